//! The actix-web ceiling for the benchmarks (BENCHMARKS.md, cases 1, 2 and 4): the smallest
//! handler that answers every request with a constant response, built with the same actix-web
//! features, worker count and runtime set-up as `stowaway serve`. Whatever stowaway does per
//! request (path checks, one `lstat`, signing, metrics) is the difference between the two.
//!
//! `cargo run --release --example ceiling -- --port 18090 --status 302 --header "Location: URL"`
//! Pass the headers stowaway sends for the same request (`Location` and `Cache-Control` for a
//! 302; `X-Accel-Redirect` and `X-S3-Location` for a local answer, with `--status 200`), so
//! both responses have the same size.

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpResponse, web};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Loopback port to listen on.
    #[arg(long, default_value_t = 18090)]
    port: u16,
    /// The constant status code.
    #[arg(long, default_value_t = 302)]
    status: u16,
    /// A constant header, `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Listen on this Unix domain socket instead of the loopback port.
    #[arg(long)]
    uds: Option<std::path::PathBuf>,
    /// Worker threads; 0 = one per CPU core (stowaway's `server.workers` default).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
}

async fn answer(a: web::Data<Answer>) -> HttpResponse {
    let mut r = HttpResponse::build(a.status);
    for (k, v) in &a.headers {
        r.insert_header((k.clone(), v.clone()));
    }
    r.finish()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header {h:?}: want `Name: value`"))?;
        headers.push((
            HeaderName::try_from(k.trim())?,
            HeaderValue::try_from(v.trim())?,
        ));
    }
    let data = web::Data::new(Answer {
        status: StatusCode::from_u16(args.status)?,
        headers,
    });
    let workers = match args.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    // As in `stowaway serve`: a multi-threaded tokio runtime drives actix's HttpServer, whose
    // workers run on their own threads.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .default_service(web::to(answer))
            })
            .workers(workers);
            let server = match &args.uds {
                Some(p) => server.bind_uds(p)?,
                None => server.bind(addr)?,
            }
            .run();
            match &args.uds {
                Some(p) => eprintln!(
                    "ceiling: constant {} on unix:{}, {workers} workers",
                    args.status,
                    p.display()
                ),
                None => eprintln!(
                    "ceiling: constant {} on http://{addr}, {workers} workers",
                    args.status
                ),
            }
            server.await?;
            Ok(())
        })
}
