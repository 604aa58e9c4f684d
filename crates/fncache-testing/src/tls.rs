//! Certificates for TLS test servers, generated with rcgen for each server.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub(crate) const CA_CERT: &str = "ca.crt";
pub(crate) const SERVER_CERT: &str = "server.crt";
pub(crate) const SERVER_KEY: &str = "server.key";

/// A fresh certificate authority, a server certificate for `127.0.0.1` and `localhost`, and a
/// client certificate, all PEM; the authority signed both certificates.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The authority's certificate: what a client trusts.
    pub ca_cert_pem: String,
    /// The server's certificate.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// A client certificate (for mutual TLS).
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial { .. }")
    }
}

impl TlsMaterial {
    /// Generates a new authority and certificates (ECDSA P-256).
    ///
    /// # Panics
    /// When rcgen fails, which it does not for these fixed parameters.
    pub fn generate() -> TlsMaterial {
        let fail = |e: rcgen::Error| -> ! { panic!("cannot generate test certificates: {e}") };

        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(e));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "fncache test authority");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
        let ca_cert = ca.self_signed(&ca_key).unwrap_or_else(|e| fail(e));
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose, cn: &str| {
            let mut params = CertificateParams::new(names).unwrap_or_else(|e| fail(e));
            params.distinguished_name.push(DnType::CommonName, cn);
            params.use_authority_key_identifier_extension = true;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap_or_else(|e| fail(e));
            let cert = params.signed_by(&key, &issuer).unwrap_or_else(|e| fail(e));
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "localhost",
        );
        let (client_cert_pem, client_key_pem) = leaf(
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            "fncache test client",
        );
        TlsMaterial {
            ca_cert_pem: ca_cert.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }

    /// Writes what `redis-server` reads: the authority, the server certificate and key.
    pub(crate) fn write_to(&self, dir: &Path) {
        for (name, pem) in [
            (CA_CERT, &self.ca_cert_pem),
            (SERVER_CERT, &self.server_cert_pem),
            (SERVER_KEY, &self.server_key_pem),
        ] {
            std::fs::write(dir.join(name), pem)
                .unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        }
    }
}
