//! Navaro's gateway: the `navaro` binary's HTTP and WebSocket API.
//!
//! [`startup`] builds the server ([`Application::build`]) and runs it until a signal,
//! shutting down in order. Requests pass the layers set up there: a request id and trace
//! span, [`wire`]'s content negotiation (JSON or MessagePack, same fields) and single
//! error shape, a timeout, the body limit, and on `/v1` the per-IP rate limit of
//! [`limits`] ([`layers`] holds the request id and the timeout, [`telemetry`] the
//! per-route metrics). [`routes`] holds the handlers by area of API.md; they authenticate with
//! [`auth`] (argon2id passwords, JWTs with `kid` rotation; [`sessions`] for refresh
//! tokens and revocation), authorize against the
//! caller's membership of the establishment in the path, and send commands to the
//! engine through [`engine_api`].
//! [`dto`] holds the request and response bodies, which render instants in the
//! establishment's offset; [`error`] is the one table from error code to HTTP status;
//! [`body`] sends bodies made of shared bytes (availability's kept days, the
//! establishment's kept rendering) without copying them.
//! [`live`] serves the WebSocket feed, whose frames [`frames`] describes for the document;
//! [`personal`] exports and erases a person's own data (LGPD);
//! [`pro`] serves the Pro web board's files at `/pro`; [`stores`] names the persistence crate's stores;
//! [`telemetry`] sets up logs and Prometheus metrics; [`openapi`] generates
//! `/openapi.json` ([`openapi_links`] its links); [`listener`] caps open connections and [`connections`] serves
//! them (slow request heads dropped, idle connections closed); [`demo`] loads demo data;
//! [`cluster`] forwards requests to their establishment's owning node when the node
//! runs in a cluster (docs/cluster.md).

pub mod auth;
pub mod availability;
pub mod body;
pub mod cluster;
pub mod connections;
pub mod demo;
pub mod dto;
pub mod engine_api;
pub mod error;
pub mod fees;
pub mod frames;
pub mod gzip;
pub mod handoff;
pub mod invalidate;
pub mod layers;
pub mod limits;
pub mod listener;
pub mod live;
pub mod live_remote;
pub mod notify;
pub mod openapi;
pub mod openapi_links;
pub mod payments;
pub mod personal;
pub mod plugins;
pub mod pro;
pub mod relay;
pub mod routes;
pub mod sessions;
pub mod startup;
pub mod state;
pub mod stores;
pub mod telemetry;
pub mod wire;

pub use startup::{Application, StartupError};
