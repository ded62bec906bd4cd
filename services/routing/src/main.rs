//! The routing binary: the platform runs the service [`ekb_routing::Routing`] describes.

ekb_platform::service_main!(ekb_routing::Routing);
