//! Handlers are plain async functions: `async fn open_case(api: &RoutingApi, call: Call,
//! request: v1::OpenCaseRequest) -> Result<v1::OpenCaseResponse, ApiError>`. The tonic trait
//! impl that adapts them — unwrap the request, take the caller, map the error through the
//! service's constraint table — is generated once, by [`grpc_handlers!`](crate::grpc_handlers),
//! so no service writes per-RPC wrapper code.

use crate::auth::Caller;

/// What a handler knows about the call besides its message.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who is calling (the local caller when authentication is disabled).
    pub caller: Caller,
}

impl Call {
    /// The call of `request`, with the caller the gateway layer authenticated.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        Call {
            caller: super::caller(request)
                .cloned()
                .unwrap_or_else(Caller::local),
        }
    }
}

/// Implements a service's generated tonic trait for its handler state by calling one plain
/// async function per RPC:
///
/// ```ignore
/// ekb_platform::grpc_handlers! {
///     Routing => RoutingApi: RoutingService {
///         open_case(v1::OpenCaseRequest) -> v1::OpenCaseResponse = handlers::open_case;
///     }
/// }
/// ```
///
/// `Routing` is the service's [`ServiceDescription`](crate::service::ServiceDescription), whose
/// constraint table resolves unique violations.
#[macro_export]
macro_rules! grpc_handlers {
    (
        $description:ty => $state:ty : $service_trait:path {
            $( $method:ident($request:ty) -> $response:ty = $handler:path; )*
        }
    ) => {
        #[$crate::reexports::tonic::async_trait]
        impl $service_trait for $state {
            $(
                async fn $method(
                    &self,
                    request: $crate::reexports::tonic::Request<$request>,
                ) -> ::std::result::Result<
                    $crate::reexports::tonic::Response<$response>,
                    $crate::reexports::tonic::Status,
                > {
                    let call = $crate::grpc::Call::of(&request);
                    $handler(self, call, request.into_inner())
                        .await
                        .map($crate::reexports::tonic::Response::new)
                        .map_err(|error: $crate::ApiError| {
                            error.into_status(
                                <$description as $crate::service::ServiceDescription>::CONSTRAINTS,
                            )
                        })
                }
            )*
        }
    };
}
