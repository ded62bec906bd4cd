//! The evaluation binary: the platform runs the service [`ekb_evaluation::Evaluation`] describes.

ekb_platform::service_main!(ekb_evaluation::Evaluation);
