//! The pilot-ordering binary: the platform runs the service [`ekb_pilot_ordering::PilotOrdering`]
//! describes.

ekb_platform::service_main!(ekb_pilot_ordering::PilotOrdering);
