//! The budget binary: the platform runs the service [`ekb_budget::Budget`] describes.

ekb_platform::service_main!(ekb_budget::Budget);
