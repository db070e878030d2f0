//! HTTPS certificates: the self-signed ECDSA P-256 certificate made on first
//! start (and again before it expires), an admin's own certificate, and the
//! rustls configuration the HTTPS listener serves them with.
//!
//! Owns: `<data>/tls/` (`self-signed.crt`/`.key`, `installed.crt`/`.key`,
//! files 0600) and which certificate is served. A change (install, remove,
//! renewal) takes effect for the next handshake: the listener asks
//! [`Tls`] for the certificate on every connection.
//! Must not touch: sockets (the patched tiny_http reads and writes TLS).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The mDNS name every appliance answers to.
pub const LOCAL_NAME: &str = "piarchive.local";
/// How long a self-signed certificate is valid (Apple's limit for TLS
/// server certificates).
const SELF_SIGNED_DAYS: i64 = 825;
/// A self-signed certificate is made again when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// How often the renewal is looked at.
pub const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);

/// What `GET /api/v1/admin/tls` says about the certificate being served.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// `self-signed` or `installed`.
    pub source: &'static str,
    /// SHA-256 of the certificate, colon-separated upper-case hex, as
    /// browsers show it.
    pub fingerprint_sha256: String,
    pub subject: String,
    /// The DNS names and addresses it is valid for.
    pub names: Vec<String>,
    /// RFC 3339, UTC.
    pub not_after: String,
    #[serde(skip)]
    not_after_unix: i64,
}

impl CertInfo {
    /// The end of validity as Unix seconds.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after_unix
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A refused certificate or key, said as a sentence.
    #[error("{0}")]
    Invalid(String),
    #[error("Cannot store the certificate in {}: {}; the certificate served until now stays in use.", .path.display(), crate::disk::describe(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Cannot make a certificate: {0}")]
    Generate(String),
}

struct Served {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

/// The certificate being served, shared by the listener and the API.
pub struct Tls {
    dir: PathBuf,
    names: Vec<String>,
    served: RwLock<Arc<Served>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("dir", &self.dir).finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which AEAD the HTTPS server chooses when the client offers both,
/// whatever the client's own order (a desktop browser puts AES-GCM first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteOrder {
    /// ChaCha20-Poly1305 first: CPUs without AES instructions (Pi 3, Pi 4),
    /// where software AES-GCM runs at a fifth of ChaCha20's speed.
    ChaCha20First,
    /// AES-GCM first: CPUs with AES and carry-less multiply instructions
    /// (x86 AES-NI, the Pi 5's ARMv8 AES and PMULL).
    AesFirst,
}

impl SuiteOrder {
    /// The order for this CPU, chosen once at start. The Pi model build
    /// (`bench/pi-model`) takes a Pi 4's order.
    pub fn for_this_cpu() -> SuiteOrder {
        if cpu_has_aes() && !cfg!(feature = "pi-model") {
            SuiteOrder::AesFirst
        } else {
            SuiteOrder::ChaCha20First
        }
    }

    /// What `piarchive selftest` prints.
    pub fn name(self) -> &'static str {
        match self {
            SuiteOrder::ChaCha20First => "chacha20-first",
            SuiteOrder::AesFirst => "aes-first",
        }
    }

    /// ring's suites (TLS 1.3 and 1.2), the preferred AEAD first, each
    /// group in ring's own order.
    fn provider(self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        let chacha_first = self == SuiteOrder::ChaCha20First;
        provider.cipher_suites.sort_by_key(|suite| {
            let chacha = suite
                .suite()
                .as_str()
                .is_some_and(|name| name.contains("CHACHA20"));
            chacha != chacha_first
        });
        Arc::new(provider)
    }
}

/// Whether AES-GCM runs in hardware here.
fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

impl Tls {
    /// Loads the installed certificate, else the self-signed one (made now
    /// when missing, unreadable or about to expire). `names` are the SANs
    /// of a new self-signed certificate.
    pub fn open(data_dir: &Path, names: Vec<String>) -> Result<Arc<Tls>, TlsError> {
        let dir = data_dir.join("tls");
        std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
            path: dir.clone(),
            source,
        })?;
        let tls = Tls {
            served: RwLock::new(Arc::new(Self::initial(&dir, &names)?)),
            dir,
            names,
        };
        Ok(Arc::new(tls))
    }

    fn initial(dir: &Path, names: &[String]) -> Result<Served, TlsError> {
        match read_pair(dir, "installed").map(|(c, k)| parse(&c, &k, "installed")) {
            Some(Ok(served)) => return Ok(served),
            Some(Err(err)) => eprintln!(
                "piarchive: the installed HTTPS certificate is not usable ({err}); serving the self-signed one"
            ),
            None => {}
        }
        self_signed(dir, names)
    }

    /// The rustls configuration of the HTTPS listener: TLS 1.3 and 1.2,
    /// ring's suites in this CPU's [`SuiteOrder`] (the server's order, not
    /// the client's), HTTP/1.1, the certificate asked of `self` at every
    /// handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        self.server_config_in(SuiteOrder::for_this_cpu())
    }

    /// As [`Self::server_config`], with the suites in `order`.
    pub fn server_config_in(
        self: &Arc<Self>,
        order: SuiteOrder,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(order.provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.ignore_client_order = true;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    pub fn info(&self) -> CertInfo {
        self.current().info.clone()
    }

    fn current(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn serve(&self, served: Served) -> CertInfo {
        let info = served.info.clone();
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(served);
        info
    }

    /// Installs an admin's certificate chain and key (PEM). Refused with a
    /// sentence, the old certificate still served, when they do not parse,
    /// do not belong together or the certificate is not valid now.
    pub fn install(&self, cert_pem: &str, key_pem: &str) -> Result<CertInfo, TlsError> {
        let served = parse(cert_pem.as_bytes(), key_pem.as_bytes(), "installed")?;
        write_pair(
            &self.dir,
            "installed",
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
        )?;
        Ok(self.serve(served))
    }

    /// Goes back to the self-signed certificate.
    pub fn remove_installed(&self) -> Result<CertInfo, TlsError> {
        let served = self_signed(&self.dir, &self.names)?;
        for file in ["installed.crt", "installed.key"] {
            let path = self.dir.join(file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TlsError::Io { path, source }),
            }
        }
        Ok(self.serve(served))
    }

    /// Makes a new self-signed certificate when the one served expires
    /// within [`RENEW_BEFORE`]. Returns the new one's details.
    pub fn renew_if_due(&self) -> Result<Option<CertInfo>, TlsError> {
        let current = self.current();
        if current.info.source != "self-signed" || !expires_soon(&current.info) {
            return Ok(None);
        }
        let served = self_signed(&self.dir, &self.names)?;
        Ok(Some(self.serve(served)))
    }
}

impl ResolvesServerCert for Tls {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

/// The names a self-signed certificate is made for: the host name, its
/// `.local` name, `piarchive.local`, `localhost`, 127.0.0.1 and `addresses`.
pub fn default_names(hostname: &str, addresses: &[IpAddr]) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |name: String| {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    add(hostname.to_string());
    if !hostname.is_empty() && !hostname.contains('.') {
        add(format!("{hostname}.local"));
    }
    add(LOCAL_NAME.to_string());
    add("localhost".to_string());
    add("127.0.0.1".to_string());
    for address in addresses {
        add(address.to_string());
    }
    names
}

/// This machine's host name (`uname -n`).
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn expires_soon(info: &CertInfo) -> bool {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    info.not_after_unix - now < RENEW_BEFORE.as_secs() as i64
}

/// The stored self-signed certificate, or a new one when it is missing,
/// unreadable or about to expire.
fn self_signed(dir: &Path, names: &[String]) -> Result<Served, TlsError> {
    if let Some((cert, key)) = read_pair(dir, "self-signed") {
        if let Ok(served) = parse(&cert, &key, "self-signed") {
            if !expires_soon(&served.info) {
                return Ok(served);
            }
        }
    }
    let (cert, key) = generate(names)?;
    let served = parse(cert.as_bytes(), key.as_bytes(), "self-signed")?;
    write_pair(dir, "self-signed", cert.as_bytes(), key.as_bytes())?;
    Ok(served)
}

/// A new ECDSA P-256 key and a certificate for `names` signed by it (PEM).
pub fn generate(names: &[String]) -> Result<(String, String), TlsError> {
    let fail = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
    let mut subject = rcgen::DistinguishedName::new();
    let host = names.first().map(String::as_str).unwrap_or(LOCAL_NAME);
    subject.push(rcgen::DnType::CommonName, host);
    subject.push(rcgen::DnType::OrganizationName, "piarchive");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Checks a chain and key and makes them ready to serve.
fn parse(cert_pem: &[u8], key_pem: &[u8], source: &'static str) -> Result<Served, TlsError> {
    let invalid = |s: &str| TlsError::Invalid(s.to_string());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("The certificate is not a PEM certificate chain (blocks starting with -----BEGIN CERTIFICATE-----)."))?;
    if chain.is_empty() {
        return Err(invalid(
            "No certificate was found: paste the PEM blocks starting with -----BEGIN CERTIFICATE-----.",
        ));
    }
    check_every_block(cert_pem, &chain)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
        invalid("The key is not a PEM private key (PKCS#8, RSA or EC, not encrypted).")
    })?;
    let signing_key = provider().key_provider.load_private_key(key).map_err(|_| {
        invalid("This kind of private key is not supported; use an RSA or ECDSA key.")
    })?;
    let info = describe(&chain[0], source)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|_| invalid("The private key does not belong to the certificate."))?;
    Ok(Served {
        key: Arc::new(certified),
        info,
    })
}

/// Refuses a chain with a block that is not a certificate (another kind of
/// PEM block, which the PEM reader would skip) or a certificate block whose
/// content is not an X.509 certificate: served as it is, it would break
/// HTTPS for every client.
fn check_every_block(cert_pem: &[u8], chain: &[CertificateDer<'_>]) -> Result<(), TlsError> {
    let blocks = cert_pem
        .windows(b"-----BEGIN ".len())
        .filter(|window| *window == b"-----BEGIN ")
        .count();
    if blocks != chain.len() {
        return Err(TlsError::Invalid(format!(
            "The certificate chain holds {blocks} PEM blocks but only {} certificates; paste only the CERTIFICATE blocks (the key goes in its own field).",
            chain.len()
        )));
    }
    for (index, der) in chain.iter().enumerate() {
        let whole =
            matches!(x509_parser::parse_x509_certificate(der), Ok((rest, _)) if rest.is_empty());
        if !whole {
            return Err(TlsError::Invalid(format!(
                "Certificate {} of {} in the chain could not be read as an X.509 certificate; paste the chain exactly as your certificate authority gave it.",
                index + 1,
                chain.len()
            )));
        }
    }
    Ok(())
}

/// The certificate's subject, names, expiry and fingerprint; refuses one
/// that is not valid now.
fn describe(leaf: &CertificateDer<'_>, source: &'static str) -> Result<CertInfo, TlsError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|_| {
        TlsError::Invalid("The first certificate in the chain could not be read.".into())
    })?;
    let validity = cert.validity();
    let now = time::OffsetDateTime::now_utc();
    let not_after = validity.not_after.to_datetime();
    let day = |t: time::OffsetDateTime| t.date().to_string();
    if not_after < now {
        return Err(TlsError::Invalid(format!(
            "The certificate expired on {}.",
            day(not_after)
        )));
    }
    let not_before = validity.not_before.to_datetime();
    if not_before > now {
        return Err(TlsError::Invalid(format!(
            "The certificate is not valid before {}.",
            day(not_before)
        )));
    }
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => names.extend(ip_from_bytes(bytes)),
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        source,
        fingerprint_sha256: fingerprint(leaf),
        subject: cert.subject().to_string(),
        names,
        not_after: not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        not_after_unix: not_after.unix_timestamp(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// SHA-256 of a DER certificate as browsers show it: `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_pair(dir: &Path, stem: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let cert = std::fs::read(dir.join(format!("{stem}.crt"))).ok()?;
    let key = std::fs::read(dir.join(format!("{stem}.key"))).ok()?;
    Some((cert, key))
}

/// Writes `<stem>.key` and `<stem>.crt` (0600): both new files are written
/// and flushed first, then renamed over the old pair, so a full or failing
/// disk leaves the old pair as it was and no half-written file behind.
fn write_pair(dir: &Path, stem: &str, cert: &[u8], key: &[u8]) -> Result<(), TlsError> {
    let key_path = dir.join(format!("{stem}.key"));
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_temp = write_temp(&key_path, key)?;
    let cert_temp = write_temp(&cert_path, cert).inspect_err(|_| {
        let _ = std::fs::remove_file(&key_temp);
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    let renamed = std::fs::rename(&key_temp, &key_path)
        .map_err(io(&key_path))
        .and_then(|()| std::fs::rename(&cert_temp, &cert_path).map_err(io(&cert_path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&key_temp);
        let _ = std::fs::remove_file(&cert_temp);
    }
    renamed
}

/// Writes `bytes` to `<path>.new` (0600) and flushes it; removes it again
/// when that fails. Returns the temporary file's path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension(format!(
        "{}.new",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
    match written {
        Ok(()) => Ok(temp),
        Err(source) => {
            let _ = std::fs::remove_file(&temp);
            Err(TlsError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        default_names("box", &["192.168.1.20".parse().unwrap()])
    }

    /// A full disk (a small tmpfs; mounting needs root, else skipped) keeps
    /// the pair served and on disk, leaves no `.new` file, and the same
    /// install works once space is freed. Renewal writes the same way.
    #[test]
    fn a_full_disk_keeps_the_old_pair_whole_and_recovers() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            // SAFETY: geteuid has no preconditions.
            assert!(
                unsafe { libc::geteuid() } != 0,
                "mount -t tmpfs failed as root"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return;
        }
        let unmount = || {
            let _ = std::process::Command::new("umount")
                .arg(dir.path())
                .status();
        };
        let tls = Tls::open(dir.path(), names()).unwrap();
        let before = tls.info();
        let filler_path = dir.path().join("filler");
        let mut filler = std::fs::File::create(&filler_path).unwrap();
        while filler.write_all(&[0u8; 4096]).is_ok() {}
        drop(filler);
        let (cert, key) = generate(&names()).unwrap();
        let err = tls.install(&cert, &key).unwrap_err().to_string();
        let tls_dir = dir.path().join("tls");
        let mut files: Vec<String> = std::fs::read_dir(&tls_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        let reopened = Tls::open(dir.path(), names()).map(|t| t.info().fingerprint_sha256);
        let served = tls.info().fingerprint_sha256;
        std::fs::remove_file(&filler_path).unwrap();
        let installed = tls.install(&cert, &key).map(|info| info.source);
        unmount();
        assert!(
            err.contains("the data disk is full") && err.ends_with("stays in use."),
            "{err}"
        );
        assert_eq!(files, ["self-signed.crt", "self-signed.key"]);
        assert_eq!(served, before.fingerprint_sha256);
        assert_eq!(reopened.unwrap(), before.fingerprint_sha256);
        assert_eq!(installed.unwrap(), "installed");
    }

    #[test]
    fn a_new_certificate_names_the_host_the_local_name_and_the_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), names()).unwrap();
        let info = tls.info();
        assert_eq!(info.source, "self-signed");
        for name in ["box", "box.local", LOCAL_NAME, "127.0.0.1", "192.168.1.20"] {
            assert!(info.names.iter().any(|n| n == name), "{name} in {info:?}");
        }
        assert_eq!(info.fingerprint_sha256.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/self-signed.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same certificate on the next start.
        let again = Tls::open(dir.path(), names()).unwrap();
        assert_eq!(again.info(), info);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), names()).unwrap();
        let before = tls.info();
        let (cert, _) = generate(&["a.example".into()]).unwrap();
        let (_, other_key) = generate(&["b.example".into()]).unwrap();
        let err = tls.install(&cert, &other_key).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
        assert!(tls.install("not pem", &other_key).is_err());
        assert_eq!(tls.info(), before);
        let (cert, key) = generate(&["a.example".into()]).unwrap();
        let installed = tls.install(&cert, &key).unwrap();
        assert_eq!(installed.source, "installed");
        assert_eq!(installed.names, vec!["a.example".to_string()]);
        assert_eq!(Tls::open(dir.path(), names()).unwrap().info(), installed);
        assert_eq!(tls.remove_installed().unwrap(), before);
    }

    #[test]
    fn a_chain_with_a_block_that_does_not_parse_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), names()).unwrap();
        let before = tls.info();
        let (cert, key) = generate(&["a.example".into()]).unwrap();
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQsIG5vdCBhIGNlcnRpZmljYXRl\n-----END CERTIFICATE-----\n";
        let err = tls
            .install(&format!("{cert}{junk}"), &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Certificate 2 of 2"), "{err}");
        let other = "-----BEGIN SOMETHING ELSE-----\naGVsbG8=\n-----END SOMETHING ELSE-----\n";
        let err = tls
            .install(&format!("{cert}{other}"), &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 PEM blocks but only 1"), "{err}");
        assert_eq!(tls.info(), before);
        tls.install(&cert, &key).unwrap();
    }

    /// The suite a client offering `client_suites` (in that order) gets from
    /// a server in `order`, over a real loopback connection with `version`.
    fn negotiated(
        order: SuiteOrder,
        client_suites: &[rustls::SupportedCipherSuite],
        version: &'static rustls::SupportedProtocolVersion,
    ) -> rustls::CipherSuite {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), names()).unwrap();
        let server_config = tls.server_config_in(order).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut connection = rustls::ServerConnection::new(server_config).unwrap();
            while connection.is_handshaking() {
                connection.complete_io(&mut socket).unwrap();
            }
            connection.negotiated_cipher_suite().unwrap().suite()
        });
        let cert = std::fs::read(dir.path().join("tls/self-signed.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&cert).unwrap())
            .unwrap();
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = client_suites.to_vec();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut connection =
            rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
                .unwrap();
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        while connection.is_handshaking() {
            connection.complete_io(&mut socket).unwrap();
        }
        // The client's last flight (its Finished), for the server's side.
        while connection.wants_write() {
            connection.write_tls(&mut socket).unwrap();
        }
        let client_side = connection.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(server.join().unwrap(), client_side);
        client_side
    }

    /// The server's order decides, whichever AEAD the client lists first,
    /// in TLS 1.3 and 1.2.
    #[test]
    fn the_server_chooses_the_aead_of_its_suite_order_whatever_the_client_prefers() {
        use rustls::crypto::ring::cipher_suite::*;
        use rustls::CipherSuite;
        let aes_first_13 = [TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256];
        let chacha_first_13 = [TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256];
        let aes_first_12 = [
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        let chacha_first_12 = [
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ];
        let (v13, v12) = (&rustls::version::TLS13, &rustls::version::TLS12);
        let chacha = SuiteOrder::ChaCha20First;
        let aes = SuiteOrder::AesFirst;
        for client in [&aes_first_13, &chacha_first_13] {
            assert_eq!(
                negotiated(chacha, client, v13),
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            );
            assert_eq!(
                negotiated(aes, client, v13),
                CipherSuite::TLS13_AES_128_GCM_SHA256
            );
        }
        for client in [&aes_first_12, &chacha_first_12] {
            assert_eq!(
                negotiated(chacha, client, v12),
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            );
            assert_eq!(
                negotiated(aes, client, v12),
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            );
        }
        // A client offering only one AEAD still gets it.
        assert_eq!(
            negotiated(chacha, &[TLS13_AES_256_GCM_SHA384], v13),
            CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        // This machine's choice follows its AES instructions, as the CPU
        // itself lists them.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo.lines().find(|line| line.starts_with("flags"));
        let has = |flag: &str| flags.is_some_and(|line| line.split_whitespace().any(|f| f == flag));
        if cfg!(target_arch = "x86_64") && !cfg!(feature = "pi-model") {
            assert_eq!(
                SuiteOrder::for_this_cpu() == SuiteOrder::AesFirst,
                has("aes") && has("pclmulqdq")
            );
        }
    }
}
