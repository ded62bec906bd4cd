//! The expert-registry binary: the platform runs the service [`ekb_expert_registry::ExpertRegistry`] describes.

ekb_platform::service_main!(ekb_expert_registry::ExpertRegistry);
