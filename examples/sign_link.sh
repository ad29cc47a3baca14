#!/usr/bin/env bash
# Mint a stowaway signed link (algorithm: docs/signed-links.md) with bash and openssl.
#
#   sign_link.sh [-m METHOD] [-i IP_PREFIX] [-e EXPIRES | -t TTL_SECONDS] [-b BASE_URL] \
#                KID SECRET_FILE PATH
#
#   sign_link.sh -t 3600 2026-11 /etc/stowaway/link-key-2026-11 "/private/report 2026.pdf"
#
# PATH is the file's URL path, NOT percent-encoded and already normalised (no empty, "." or
# ".." segments). IP_PREFIX is signed exactly as given: write it canonically (host bits zero,
# e.g. 10.0.0.0/8). Trailing newlines of SECRET_FILE are ignored, as stowaway ignores them.
# Caveat: openssl receives the secret as a command-line argument, so other users of this machine
# can see it in the process list while the command runs. Use sign_link.py (or your own code)
# on shared machines.
set -euo pipefail

method= ip= expires= ttl=3600 base=
while getopts 'm:i:e:t:b:h' opt; do
  case $opt in
    m) method=$(printf '%s' "$OPTARG" | tr '[:lower:]' '[:upper:]') ;;
    i) ip=$OPTARG ;;
    e) expires=$OPTARG ;;
    t) ttl=$OPTARG ;;
    b) base=${OPTARG%/} ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -ne 3 ]; then sed -n '2,16p' "$0" >&2; exit 2; fi
kid=$1 secret_file=$2 path=$3
case $path in
  /*) ;;
  *) echo "sign_link.sh: PATH must start with /" >&2; exit 2 ;;
esac
[ -n "$expires" ] || expires=$(( $(date +%s) + ttl ))

# Percent-encodes every byte except RFC 3986 unreserved characters and the characters in $2.
urlencode() {
  local LC_ALL=C s=$1 keep=${2:-} out= c i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case $c in
      [a-zA-Z0-9._~-]) out+=$c ;;
      *)
        if [ -n "$keep" ] && [[ $keep == *"$c"* ]]; then
          out+=$c
        else
          printf -v c '%%%02X' "'$c"
          out+=$c
        fi ;;
    esac
  done
  printf '%s' "$out"
}

secret=$(cat -- "$secret_file")   # $(...) drops the trailing newlines
signature=$(printf 'stowaway-link-v1\n%s\n%s\n%s\n%s\n%s' "$kid" "$expires" "$method" "$ip" "$path" \
  | openssl dgst -sha256 -binary -hmac "$secret" \
  | openssl base64 -A | tr '+/' '-_' | tr -d '=')

link="$(urlencode "$path" /)?expires=$expires&kid=$(urlencode "$kid")"
[ -z "$method" ] || link+="&method=$method"
[ -z "$ip" ] || link+="&ip=$(urlencode "$ip")"
printf '%s%s&signature=%s\n' "$base" "$link" "$signature"
