//! The applications binary: the platform runs the service [`ekb_applications::Applications`]
//! describes.

ekb_platform::service_main!(ekb_applications::Applications);
