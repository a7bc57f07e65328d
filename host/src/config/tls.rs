//! Validating TLS settings: listener certificates and client CAs, upstream trust and client certificates.

use super::*;

impl Validator {
    pub(super) fn listener_tls(
        &mut self,
        t: &toml::Spanned<manifest::TlsSpec>,
        base: &Path,
    ) -> crate::tls::TlsSettings {
        let spec = t.get_ref();
        if spec.certificates.is_empty() {
            self.error(
                t.span(),
                "listeners.tls.certificates: at least one certificate is required",
            );
        }
        let certificates = spec
            .certificates
            .iter()
            .map(|c| crate::tls::CertFiles {
                cert: base.join(c.get_ref().cert.get_ref()),
                key: base.join(c.get_ref().key.get_ref()),
            })
            .collect();
        let required = match spec.client_auth.as_ref() {
            None => true,
            Some(a) => match a.get_ref().as_str() {
                "required" => true,
                "optional" => false,
                other => {
                    self.error(
                        a.span(),
                        format!("listeners.tls.client-auth: {other:?} is not required or optional"),
                    );
                    true
                }
            },
        };
        if let (None, Some(a)) = (&spec.client_ca, &spec.client_auth) {
            self.error(
                a.span(),
                "listeners.tls.client-auth: needs client-ca (the CAs that issue client certificates)",
            );
        }
        crate::tls::TlsSettings {
            certificates,
            client_auth: spec.client_ca.as_ref().map(|ca| crate::tls::ClientAuth {
                ca: base.join(ca.get_ref()),
                required,
            }),
        }
    }

    pub(super) fn upstream_tls(
        &mut self,
        field: &str,
        t: &manifest::UpstreamTlsSpec,
        base: &Path,
    ) -> crate::upstream::tls::TlsSpec {
        let client_cert = match (&t.cert, &t.key) {
            (Some(cert), Some(key)) => Some(crate::tls::CertFiles {
                cert: base.join(cert.get_ref()),
                key: base.join(key.get_ref()),
            }),
            (Some(only), None) | (None, Some(only)) => {
                self.error(
                    only.span(),
                    format!("{field}: a client certificate needs both cert and key"),
                );
                None
            }
            (None, None) => None,
        };
        let verify = t.verify.as_ref().is_none_or(|v| *v.get_ref());
        if let (false, Some(ca)) = (verify, &t.ca) {
            self.error(
                ca.span(),
                format!("{field}.ca: unused with verify = false (remove one of them)"),
            );
        }
        crate::upstream::tls::TlsSpec {
            ca: t.ca.as_ref().map(|c| base.join(c.get_ref())),
            server_name: t.server_name.as_ref().map(|n| n.get_ref().clone()),
            client_cert,
            verify,
        }
    }
}
