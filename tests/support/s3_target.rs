//! Test support: the real S3 servers the remote suites run against, behind
//! one trait, so a test body is written once and run against each
//! (`remote::s3_client_suite!`, `remote_engine::s3_engine_suite!`).
//!
//! Owns the trait and its two implementations: s3s-fs in process
//! ([`S3TestServer`], whose stored objects are read straight from its
//! folder) and a one-node Garage cluster ([`GarageCluster`], whose stored
//! objects are read through S3 with an empty prefix, i.e. the bucket as any
//! other client sees it). It must not start the piarchive server.
#![allow(dead_code)]

use std::net::SocketAddr;

use piarchive::remote::RemoteSettings;

use super::files_under;
use super::s3_server::S3TestServer;

/// A running S3 server with bucket `s3_server::BUCKET`, the test key, and
/// region `s3_server::REGION`; stops when dropped.
pub trait S3Target: StoredObjects + Sized {
    /// Names the server in messages.
    const NAME: &'static str;
    /// A path-style server on 127.0.0.1.
    fn start() -> Self;
    /// A server that also answers virtual-hosted requests for `domain`
    /// (`BUCKET.domain:PORT`); its endpoint is `http://domain:PORT`.
    fn start_virtual_hosted(domain: &str) -> Self;
    /// Where the server listens (for a proxy or `with_connect_to`).
    fn address(&self) -> SocketAddr;
    fn endpoint(&self) -> String;
    /// Path-style settings with the right keys.
    fn settings(&self, prefix: &str) -> RemoteSettings;
    /// Like `settings` with another endpoint (e.g. a proxy).
    fn settings_via(&self, endpoint: &str, prefix: &str) -> RemoteSettings;
}

/// What a remote holds, seen from outside piarchive: the server's own store
/// (s3s-fs, the folder remote) or the bucket through S3 (Garage). Keys are
/// full keys, the remote's prefix included.
pub trait StoredObjects {
    /// The full keys the server stores under `full_prefix`, sorted.
    fn stored_keys(&self, full_prefix: &str) -> Vec<String>;
    /// The bytes the server stores for `full_key`.
    fn stored_object(&self, full_key: &str) -> Option<Vec<u8>>;
    /// Replaces (or creates) what the server stores for `full_key`.
    fn store_object(&self, full_key: &str, bytes: &[u8]);
}

impl S3Target for S3TestServer {
    const NAME: &'static str = "s3s-fs";

    fn start() -> Self {
        S3TestServer::start()
    }

    fn start_virtual_hosted(domain: &str) -> Self {
        S3TestServer::start_virtual_hosted(domain)
    }

    fn address(&self) -> SocketAddr {
        self.address
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    fn settings(&self, prefix: &str) -> RemoteSettings {
        S3TestServer::settings(self, prefix)
    }

    fn settings_via(&self, endpoint: &str, prefix: &str) -> RemoteSettings {
        S3TestServer::settings_via(self, endpoint, prefix)
    }
}

impl StoredObjects for S3TestServer {
    fn stored_keys(&self, full_prefix: &str) -> Vec<String> {
        let bucket = self.object_path("");
        let mut keys: Vec<String> = files_under(&bucket)
            .into_iter()
            .filter_map(|path| {
                let relative = path.strip_prefix(&bucket).ok()?;
                Some(relative.to_string_lossy().into_owned())
            })
            .filter(|key| key.starts_with(full_prefix))
            .collect();
        keys.sort();
        keys
    }

    fn stored_object(&self, full_key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.object_path(full_key)).ok()
    }

    fn store_object(&self, full_key: &str, bytes: &[u8]) {
        let path = self.object_path(full_key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("object folder");
        }
        std::fs::write(&path, bytes).expect("object file");
    }
}

/// Garage runs only with the `garage-tests` feature (it needs the
/// `garage` binary that `tests/garage/install` builds).
#[cfg(feature = "garage-tests")]
mod garage_target {
    use std::time::Duration;

    use piarchive::remote::s3::S3Client;
    use piarchive::remote::{ErrorKind, Remote, TransferOptions};

    use super::*;
    use crate::support::garage::GarageCluster;

    impl S3Target for GarageCluster {
        const NAME: &'static str = "garage";

        fn start() -> Self {
            GarageCluster::start(1)
        }

        fn start_virtual_hosted(domain: &str) -> Self {
            GarageCluster::start_virtual_hosted(domain)
        }

        fn address(&self) -> SocketAddr {
            self.address
        }

        fn endpoint(&self) -> String {
            self.endpoint.clone()
        }

        fn settings(&self, prefix: &str) -> RemoteSettings {
            GarageCluster::settings(self, prefix)
        }

        fn settings_via(&self, endpoint: &str, prefix: &str) -> RemoteSettings {
            GarageCluster::settings_via(self, endpoint, prefix)
        }
    }

    impl StoredObjects for GarageCluster {
        fn stored_keys(&self, full_prefix: &str) -> Vec<String> {
            let mut keys = bucket_client(self)
                .list(full_prefix)
                .unwrap_or_else(|error| panic!("listing the Garage bucket: {error}"));
            keys.sort();
            keys
        }

        fn stored_object(&self, full_key: &str) -> Option<Vec<u8>> {
            match bucket_client(self).get(full_key) {
                Ok(bytes) => Some(bytes),
                Err(error) if error.kind == ErrorKind::NotFound => None,
                Err(error) => panic!("reading {full_key:?} from Garage: {error}"),
            }
        }

        fn store_object(&self, full_key: &str, bytes: &[u8]) {
            bucket_client(self)
                .put(full_key, bytes)
                .unwrap_or_else(|error| panic!("writing {full_key:?} to Garage: {error}"));
        }
    }

    /// A client for the whole bucket (empty prefix), straight to node 0.
    fn bucket_client(cluster: &GarageCluster) -> S3Client {
        let options = TransferOptions {
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            base_backoff: Duration::from_millis(5),
        };
        S3Client::new(
            &cluster.settings_via(&format!("http://{}", cluster.address), ""),
            &options,
        )
        .expect("valid settings for the Garage bucket")
    }
}

/// The folder remote's objects: `<folder>/<key>`.
pub struct FolderObjects(pub std::path::PathBuf);

impl StoredObjects for FolderObjects {
    fn stored_keys(&self, full_prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = files_under(&self.0)
            .into_iter()
            .filter_map(|path| {
                let relative = path.strip_prefix(&self.0).ok()?;
                Some(relative.to_string_lossy().into_owned())
            })
            .filter(|key| key.starts_with(full_prefix))
            .collect();
        keys.sort();
        keys
    }

    fn stored_object(&self, full_key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(full_key)).ok()
    }

    fn store_object(&self, full_key: &str, bytes: &[u8]) {
        std::fs::write(self.0.join(full_key), bytes).expect("object file");
    }
}
