//! HQ's certificate authority: it issues HQ's server certificate and every store's
//! client certificate. A store's identity is its certificate's common name
//! (`kassa-store-N`), so HQ never has to believe a store about who it is.
//!
//! Files (PEM) under `<hq data>/pki/`: `ca.crt`, `ca.key`, `hq.crt`, `hq.key`.
//! A store's enrolment writes `ca.crt`, `store.crt`, `store.key` into a directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kassa_protocol::StoreId;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The DNS name HQ's certificate carries; stores connect with this server name.
pub const HQ_SERVER_NAME: &str = "kassa-hq";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: not a valid PEM file")]
    Pem { path: PathBuf },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("store 0 is HQ itself; enrol stores from 1")]
    ReservedStore,
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    fs::write(path, contents).map_err(io)?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

/// The CA and HQ's own certificate, created on first start.
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Opens the PKI under `dir`, creating the CA and HQ's certificate if absent.
    pub fn open_or_create(dir: &Path) -> Result<Pki, PkiError> {
        let pki = Pki { dir: dir.to_owned() };
        if !pki.path("ca.crt").exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::CommonName, "Kassa HQ CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key)?;
            write(&pki.path("ca.key"), &key.serialize_pem())?;
            write(&pki.path("ca.crt"), &cert.pem())?;
            tracing::info!(dir = %dir.display(), "created HQ certificate authority");
        }
        if !pki.path("hq.crt").exists() {
            let names = vec![HQ_SERVER_NAME.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()];
            let mut params = CertificateParams::new(names)?;
            params.distinguished_name.push(DnType::CommonName, HQ_SERVER_NAME);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let (cert, key) = pki.issue(params)?;
            write(&pki.path("hq.key"), &key)?;
            write(&pki.path("hq.crt"), &cert)?;
        }
        Ok(pki)
    }

    /// A copy of this PKI in `dir`, for another HQ node of the same chain: every node
    /// serves with HQ's certificate and enrols stores with the one CA.
    pub fn copy_to(&self, dir: &Path) -> Result<Pki, PkiError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| PkiError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            if entry.file_type().map_err(io(&entry.path()))?.is_file() {
                let to = dir.join(entry.file_name());
                std::fs::copy(entry.path(), &to).map_err(io(&to))?;
            }
        }
        Pki::open_or_create(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Signs `params` with the CA; returns (certificate PEM, key PEM).
    fn issue(&self, params: CertificateParams) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&read(&self.path("ca.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&read(&self.path("ca.crt"))?, ca_key)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Writes a store's key, certificate and the CA certificate into `out_dir`.
    pub fn enroll(&self, store: StoreId, out_dir: &Path) -> Result<(), PkiError> {
        if store == StoreId::HQ {
            return Err(PkiError::ReservedStore);
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, store.certificate_name());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let (cert, key) = self.issue(params)?;
        write(&out_dir.join("store.key"), &key)?;
        write(&out_dir.join("store.crt"), &cert)?;
        write(&out_dir.join("ca.crt"), &read(&self.path("ca.crt"))?)?;
        tracing::info!(%store, dir = %out_dir.display(), "enrolled store");
        Ok(())
    }

    /// The QUIC server configuration: TLS 1.3, client certificates required and
    /// verified against the CA, ALPN offering the sync protocol `versions` (preferred
    /// first; each must be one `kassa_protocol::wire` speaks). A store offering none of
    /// them fails the handshake with "no application protocol".
    pub fn server_config(&self, versions: &[u32]) -> Result<quinn::ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in load_certs(&self.path("ca.crt"))? {
            roots.add(ca)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.path("hq.crt"))?, load_key(&self.path("hq.key"))?)?;
        tls.alpn_protocols =
            versions.iter().filter_map(|&v| kassa_protocol::wire::alpn(v)).map(<[u8]>::to_vec).collect();
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport_config()));
        Ok(config)
    }
}

/// Explicit transport settings rather than trusting defaults: one bidirectional stream
/// per store connection, a keep-alive well inside the idle timeout so a quiet store is
/// not dropped, and an idle timeout short enough to notice a dead link in seconds.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(4u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.keep_alive_interval(Some(std::time::Duration::from_secs(2)));
    t.max_idle_timeout(Some(std::time::Duration::from_secs(10).try_into().expect("10 s fits")));
    t
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|_| PkiError::Pem { path: path.to_owned() })?.collect();
    certs.map_err(|_| PkiError::Pem { path: path.to_owned() })
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_file(path).map_err(|_| PkiError::Pem { path: path.to_owned() })
}

/// The public key of a verified client certificate (for a store's: the key its
/// receipts are signed with, an uncompressed P-256 point).
pub fn public_key_of_certificate(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.public_key().subject_public_key.data.to_vec())
}

/// The store a verified client certificate names, if it names one.
pub fn store_of_certificate(cert: &CertificateDer<'_>) -> Option<StoreId> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    StoreId::from_certificate_name(cn)
}
