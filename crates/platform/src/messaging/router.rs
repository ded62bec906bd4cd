//! Typed event routing: a service registers one handler per payload type
//! (`EventRouter::new(state).on::<v1::AgreementActivated>()`), and the router decodes each
//! envelope's payload once, as the type its `event_type` names, and calls that handler inside
//! the consumer's unit of work. The list of handled types is derived from the registrations;
//! anything else is skipped and recorded by the consumer, never decoded as something it is not.
//!
//! The topics come with the registrations too: `from("expert-registry")` subscribes to that
//! service's topic. One consumer (one group member) covers all of a service's topics.

use std::{collections::HashMap, marker::PhantomData, sync::Arc};

use ekb_proto::v1::EventEnvelope;
use futures::future::BoxFuture;
use prost::{Message, Name};

use super::{HandlerError, UnitOfWork};

/// A service's handler for events of type `E` (its state implements this once per type).
pub trait Handles<E>: Send + Sync + 'static {
    /// Applies `event` (decoded from `envelope`) inside the consumer's unit of work. Anything
    /// it publishes commits with the inbox row and its state change.
    fn handle<'a>(
        &'a self,
        work: &'a mut UnitOfWork,
        event: E,
        envelope: &'a EventEnvelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

/// One registered payload type, erased.
trait Route: Send + Sync {
    fn apply<'a>(
        &'a self,
        work: &'a mut UnitOfWork,
        envelope: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

struct TypedRoute<S, E> {
    state: Arc<S>,
    payload: PhantomData<fn() -> E>,
}

impl<S, E> Route for TypedRoute<S, E>
where
    S: Handles<E>,
    E: Message + Name + Default + Send + 'static,
{
    fn apply<'a>(
        &'a self,
        work: &'a mut UnitOfWork,
        envelope: &'a EventEnvelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let event = E::decode(envelope.payload.as_slice()).map_err(|error| {
                HandlerError::Permanent(format!(
                    "payload does not decode as {}: {error}",
                    E::full_name()
                ))
            })?;
            self.state.handle(work, event, envelope).await
        })
    }
}

/// The events a service consumes: the producing services' topics and one handler per type.
pub struct EventRouter<S> {
    state: Arc<S>,
    producers: Vec<&'static str>,
    routes: HashMap<String, Box<dyn Route>>,
}

impl<S: Send + Sync + 'static> EventRouter<S> {
    /// A router whose handlers are implemented by `state`.
    pub fn new(state: S) -> Self {
        EventRouter {
            state: Arc::new(state),
            producers: Vec::new(),
            routes: HashMap::new(),
        }
    }

    /// Consumes the topic of the service named `producer` (e.g. `expert-registry`).
    pub fn from(mut self, producer: &'static str) -> Self {
        if !self.producers.contains(&producer) {
            self.producers.push(producer);
        }
        self
    }

    /// Applies events of type `E` with `state`'s [`Handles<E>`].
    pub fn on<E>(mut self) -> Self
    where
        S: Handles<E>,
        E: Message + Name + Default + Send + 'static,
    {
        self.routes.insert(
            E::full_name(),
            Box::new(TypedRoute {
                state: self.state.clone(),
                payload: PhantomData::<fn() -> E>,
            }),
        );
        self
    }

    /// Applies events of each type in the tuple `T` (e.g. `(v1::OrderDeclined,
    /// v1::OrderCancelled)`) with `state`'s handler of that type: one call for several types.
    pub fn on_each<T: EventTypes<S>>(self) -> Self {
        T::register(self)
    }

    /// Erases the state type, for the consumer.
    pub fn build(self) -> Events {
        Events {
            producers: self.producers,
            routes: Arc::new(self.routes),
        }
    }
}

/// Several payload types registered with [`EventRouter::on_each`]: a tuple of up to eight.
pub trait EventTypes<S> {
    /// Registers every type of the tuple on `router`.
    fn register(router: EventRouter<S>) -> EventRouter<S>;
}

macro_rules! event_types {
    ($($event:ident),+) => {
        impl<S, $($event),+> EventTypes<S> for ($($event,)+)
        where
            S: Send + Sync + 'static $(+ Handles<$event>)+,
            $($event: Message + Name + Default + Send + 'static,)+
        {
            fn register(router: EventRouter<S>) -> EventRouter<S> {
                router$(.on::<$event>())+
            }
        }
    };
}

event_types!(A);
event_types!(A, B);
event_types!(A, B, C);
event_types!(A, B, C, D);
event_types!(A, B, C, D, E);
event_types!(A, B, C, D, E, F);
event_types!(A, B, C, D, E, F, G);
event_types!(A, B, C, D, E, F, G, H);

/// Implements [`Handles`] for several event types of one shape by one method of the state:
/// `handle_with!(BudgetState, release: v1::GrantExpired, v1::OrderCancelled)` makes each call
/// `self.release(work, &event, envelope)`, whose error converts into a [`HandlerError`].
#[macro_export]
macro_rules! handle_with {
    ($state:ty, $method:ident: $($event:ty),+ $(,)?) => {
        $(impl $crate::messaging::Handles<$event> for $state {
            // The method's error may already be a HandlerError: `?` converts any other.
            #[allow(clippy::needless_question_mark)]
            async fn handle(
                &self,
                work: &mut $crate::messaging::UnitOfWork,
                event: $event,
                envelope: &ekb_proto::v1::EventEnvelope,
            ) -> Result<(), $crate::messaging::HandlerError> {
                Ok(self.$method(work, &event, envelope).await?)
            }
        })+
    };
}

/// A built router: what the consumer subscribes to and how it applies each known type.
#[derive(Clone)]
pub struct Events {
    producers: Vec<&'static str>,
    routes: Arc<HashMap<String, Box<dyn Route>>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("producers", &self.producers)
            .field("handled", &self.handled_types())
            .finish()
    }
}

impl Events {
    /// The services whose topics are consumed.
    pub fn producers(&self) -> &[&'static str] {
        &self.producers
    }

    /// The payload types that have a handler, sorted.
    pub fn handled_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }

    /// Whether events of `event_type` have a handler; others are skipped explicitly.
    pub fn handles(&self, event_type: &str) -> bool {
        self.routes.contains_key(event_type)
    }

    /// Applies `envelope` with the handler of its type (`Ok` and nothing done for other types;
    /// the consumer checks [`Self::handles`] first and records the skip).
    pub async fn apply(
        &self,
        work: &mut UnitOfWork,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        match self.routes.get(&envelope.event_type) {
            Some(route) => route.apply(work, envelope).await,
            None => Ok(()),
        }
    }
}
