//! A stand-alone S3 server for `bench/remote`: s3s-fs (the same server the
//! tests run in-process, with SigV4 checks) over a folder, on its own port,
//! so piarchive, rclone and restic all talk to one server process.
//!
//! Owns nothing of piarchive: it only serves `ROOT/<bucket>/<key>` until it
//! is killed. Buckets are folders under ROOT (make them first, or let the
//! client create them).
//!
//! `cargo run --example s3_server -- ROOT [ADDR] [ACCESS_KEY] [SECRET_KEY]`
//! prints `listening http://127.0.0.1:PORT` once it accepts connections.

use std::io::Write;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .context("usage: s3_server ROOT [ADDR] [ACCESS_KEY] [SECRET_KEY]")?;
    let address = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let access_key = args.next().unwrap_or_else(|| "BENCHKEY".to_owned());
    let secret_key = args.next().unwrap_or_else(|| "bench-secret".to_owned());

    let fs = s3s_fs::FileSystem::new(&root)
        .map_err(|err| anyhow::anyhow!("s3s-fs over {root}: {err:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("bind {address}"))?;
        let local = listener.local_addr()?;
        println!("listening http://{local}");
        std::io::stdout().flush()?;
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let connection = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    })
}
