//! [`Settings`] back to TOML for `print-config`: every key with its effective value, secrets
//! redacted, in a form `check-config --strict` accepts again.

use super::types::Settings;

/// The effective configuration as TOML, secrets redacted; see [`Settings::to_toml`].
pub fn to_toml(s: &Settings) -> String {
    let v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    let mut out = String::new();
    render_toml(&mut out, "", &v);
    out
}

fn render_toml(out: &mut String, path: &str, v: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = v else { return };
    // scalars first, then tables, then arrays of tables
    for (k, val) in map {
        match val {
            Value::Object(_) => {}
            Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {}
            Value::Null => {}
            other => out.push_str(&format!("{k} = {}\n", toml_scalar(other))),
        }
    }
    for (k, val) in map {
        let sub = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match val {
            Value::Object(_) => {
                out.push_str(&format!("\n[{sub}]\n"));
                render_toml(out, &sub, val);
            }
            Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => {
                for item in a {
                    out.push_str(&format!("\n[[{sub}]]\n"));
                    render_toml(out, &sub, item);
                }
            }
            _ => {}
        }
    }
}

fn toml_scalar(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_scalar).collect::<Vec<_>>().join(", ")
        ),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}
