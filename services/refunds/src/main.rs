//! The refunds binary: the platform runs the service [`ekb_refunds::Refunds`] describes.

ekb_platform::service_main!(ekb_refunds::Refunds);
