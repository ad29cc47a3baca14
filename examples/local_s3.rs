//! A local S3-compatible server for the demo and for benchmarks: s3s-fs 0.14.1 (objects are
//! plain files under ROOT/<bucket>/<key>) with SigV4 authentication, on loopback.
//!
//! `cargo run --example local_s3 -- --port 18014 --root /tmp/s3data --bucket demo-media`
//! Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

#[derive(Parser)]
struct Args {
    /// Loopback port to listen on.
    #[arg(long, default_value_t = 18014)]
    port: u16,
    /// Directory that holds the buckets.
    #[arg(long)]
    root: PathBuf,
    /// Buckets to create at start-up (repeatable).
    #[arg(long)]
    bucket: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ak = std::env::var("AWS_ACCESS_KEY_ID")?;
    let sk = std::env::var("AWS_SECRET_ACCESS_KEY")?;
    std::fs::create_dir_all(&args.root)?;
    for b in &args.bucket {
        // s3s-fs keeps a bucket as a directory under the root.
        std::fs::create_dir_all(args.root.join(b))?;
    }
    let fs = s3s_fs::FileSystem::new(&args.root)
        .map_err(|e| anyhow::anyhow!("cannot use {}: {e:?}", args.root.display()))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ak, sk));
    let service = builder.build();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "local S3 (s3s-fs) listening on http://{addr}, data in {}",
        args.root.display()
    );
    loop {
        let (sock, _) = listener.accept().await?;
        let svc = service.clone();
        tokio::spawn(async move {
            let _ = ConnBuilder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}
