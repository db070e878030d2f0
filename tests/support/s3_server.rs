//! Test support: a real S3 server (s3s-fs, which checks SigV4 signatures,
//! payload hashes and clock skew) served in-process on 127.0.0.1:0.
//!
//! Owns starting the server on its own tokio runtime thread, making the
//! bucket, handing out endpoint, keys and ready-made `RemoteSettings`, and
//! stopping it on drop. Shared by every integration-test module that needs
//! an S3 remote; it must not depend on anything but the library's settings.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use piarchive::remote::RemoteSettings;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "PIARCHIVETESTKEY";
pub const SECRET_KEY: &str = "piarchive-test-secret/with+odd=chars";
pub const REGION: &str = "eu-test-1";
pub const BUCKET: &str = "piarchive-test";
/// A second key pair for the same buckets (key rotation).
pub const ROTATED_ACCESS_KEY: &str = "PIARCHIVEROTATEDKEY";
pub const ROTATED_SECRET_KEY: &str = "rotated-secret";

/// A running S3 server; stops when dropped.
pub struct S3TestServer {
    pub address: SocketAddr,
    /// `http://127.0.0.1:PORT`, or `http://DOMAIN:PORT` when virtual-hosted.
    pub endpoint: String,
    /// Where s3s-fs keeps the buckets: `<root>/<bucket>/<key>`.
    root: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The virtual-hosted domain, when started with one.
    domain: Option<String>,
}

impl S3TestServer {
    /// A path-style server at `http://127.0.0.1:PORT` with bucket [`BUCKET`].
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// A server that also accepts virtual-hosted requests for `domain`
    /// (`BUCKET.domain:PORT`). The domain does not resolve: point the client
    /// at [`S3TestServer::address`] (e.g. `S3Client::with_connect_to`).
    /// Path-style requests must then use `domain:PORT` as their host.
    pub fn start_virtual_hosted(domain: &str) -> Self {
        Self::start_inner(Some(domain))
    }

    fn start_inner(domain: Option<&str>) -> Self {
        let root = tempfile::tempdir().expect("temp dir for the S3 server");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket folder");
        // Bound here, before the thread starts: the port accepts connections
        // (they queue) as soon as this returns, so no readiness wait is needed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let address = listener.local_addr().expect("local address");
        let endpoint = match domain {
            Some(domain) => format!("http://{domain}:{}", address.port()),
            None => format!("http://{address}"),
        };

        let (shutdown, thread) = serve(root.path(), listener, domain);
        Self {
            address,
            endpoint,
            root,
            shutdown: Some(shutdown),
            thread: Some(thread),
            domain: domain.map(str::to_string),
        }
    }

    /// Stops serving (connections are refused; open ones are dropped),
    /// keeping the buckets, until [`S3TestServer::resume`].
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Serves the same buckets again at the same address after
    /// [`S3TestServer::stop`].
    pub fn resume(&mut self) {
        assert!(self.thread.is_none(), "the S3 server is running already");
        let listener = std::net::TcpListener::bind(self.address).expect("bind the same address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let (shutdown, thread) = serve(self.root.path(), listener, self.domain.as_deref());
        self.shutdown = Some(shutdown);
        self.thread = Some(thread);
    }

    /// Path-style settings for this server with the right keys.
    pub fn settings(&self, prefix: &str) -> RemoteSettings {
        RemoteSettings::S3 {
            endpoint: self.endpoint.clone(),
            region: REGION.to_owned(),
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            path_style: true,
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            object_lock: None,
        }
    }

    /// Like [`S3TestServer::settings`] with another endpoint (e.g. a proxy
    /// in front of this server).
    pub fn settings_via(&self, endpoint: &str, prefix: &str) -> RemoteSettings {
        match self.settings(prefix) {
            RemoteSettings::S3 {
                region,
                bucket,
                prefix,
                path_style,
                access_key_id,
                secret_access_key,
                object_lock,
                ..
            } => RemoteSettings::S3 {
                endpoint: endpoint.to_owned(),
                region,
                bucket,
                prefix,
                path_style,
                access_key_id,
                secret_access_key,
                object_lock,
            },
            dir @ RemoteSettings::Dir { .. } => dir,
        }
    }

    /// Makes another bucket on this server.
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir(self.root.path().join(bucket)).expect("bucket folder");
    }

    /// The file s3s-fs keeps an object in (to check what really got stored).
    pub fn object_path(&self, full_key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(full_key)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

/// Serves s3s-fs over `root` on `listener` from a thread with its own
/// tokio runtime; the sender stops it.
fn serve(
    root: &Path,
    listener: std::net::TcpListener,
    domain: Option<&str>,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let address = listener.local_addr().expect("local address");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the temp dir");
    let mut builder = S3ServiceBuilder::new(fs);
    let mut auth = SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
    auth.register(ROTATED_ACCESS_KEY.into(), ROTATED_SECRET_KEY.into());
    builder.set_auth(auth);
    if let Some(domain) = domain {
        let base = format!("{domain}:{}", address.port());
        builder.set_host(s3s::host::SingleDomain::new(&base).expect("valid test domain"));
    }
    let service = builder.build();

    let (shutdown_sender, mut shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime for the S3 server");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                    _ = &mut shutdown_receiver => break,
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        // Dropping the runtime cancels the connection tasks still open.
        runtime.shutdown_background();
    });
    (shutdown_sender, thread)
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
