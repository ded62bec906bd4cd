//! The tower layer in front of every service's handlers: counts and times each call by method
//! and status code, and enforces authentication and the RPC's declared roles before the handler
//! runs. Health and reflection stay open; an undeclared method is refused (fail closed).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::{
    auth::{Caller, JwtValidator, RpcRoles, TokenError},
    metrics::{GRPC_LATENCY, GRPC_REQUESTS},
};

struct GatewayState {
    service: &'static str,
    roles: RpcRoles,
    /// `None` when authentication is disabled by configuration.
    validator: Option<JwtValidator>,
}

/// Adds metrics and authorization to a gRPC server.
#[derive(Clone)]
pub struct GatewayLayer {
    state: Arc<GatewayState>,
}

impl GatewayLayer {
    /// A layer for `service` with its role table; `validator = None` disables authentication.
    pub fn new(service: &'static str, roles: RpcRoles, validator: Option<JwtValidator>) -> Self {
        GatewayLayer {
            state: Arc::new(GatewayState {
                service,
                roles,
                validator,
            }),
        }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = Gateway<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gateway {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service produced by [`GatewayLayer`].
#[derive(Clone)]
pub struct Gateway<S> {
    inner: S,
    state: Arc<GatewayState>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Gateway<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone is the ready one's sibling; swap so the ready service serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let started = Instant::now();
            let path = request.uri().path().to_owned();
            let declared = state.roles.accepted_roles(&path).is_some() || RpcRoles::is_open(&path);
            let method = if declared {
                path.rsplit('/').next().unwrap_or_default().to_owned()
            } else {
                "undeclared".to_owned()
            };
            let response = match authorize(&state, &path, &mut request).await {
                Ok(()) => inner.call(request).await?,
                Err(status) => status.into_http(),
            };
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(Code::Ok, Code::from);
            // The server span (see the host's trace_fn) is current while this future runs.
            tracing::Span::current().record("rpc.grpc.status_code", code as i32);
            let labels = [
                ("service", state.service.to_owned()),
                ("method", method),
                ("code", format!("{code:?}")),
            ];
            metrics::counter!(GRPC_REQUESTS, &labels).increment(1);
            metrics::histogram!(GRPC_LATENCY, &labels).record(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

async fn authorize<B>(
    state: &GatewayState,
    path: &str,
    request: &mut http::Request<B>,
) -> Result<(), Status> {
    if RpcRoles::is_open(path) {
        return Ok(());
    }
    let Some(accepted) = state.roles.accepted_roles(path) else {
        return Err(Status::permission_denied(format!(
            "method {path} is not offered"
        )));
    };
    let Some(validator) = &state.validator else {
        request.extensions_mut().insert(Caller::local());
        return Ok(());
    };
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let caller = validator
        .validate_header(header)
        .await
        .map_err(|error| match error {
            TokenError::KeysUnavailable => Status::unavailable("cannot validate tokens right now"),
            other => Status::unauthenticated(other.to_string()),
        })?;
    if !caller.has_any_role(accepted) {
        let accepted = accepted.join(" or ");
        tracing::info!(subject = %caller.subject, %accepted, "caller lacks a role the RPC accepts");
        return Err(Status::permission_denied(format!(
            "requires role {accepted}"
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(())
}
