//! TLS for outgoing HTTPS (the issuer's JWKS): rustls with the `ring` provider, installed once
//! per process, so no second crypto library is built.

/// Installs `ring` as the process-wide rustls provider if none is installed yet.
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
