//! OpenAPI links: which answer gives the ids that other operations take in their path.
//!
//! A client (or a stateful fuzzer such as Schemathesis) that creates an establishment
//! learns from the document that the answer's `id` is the `{id}` of its services,
//! bookings, queue and so on; that a new booking's `id` is the `{booking_id}` of its
//! cancel and reschedule; and so on down. Declared here as one table rather than on
//! each handler, so that a test can check every link names an operation that exists and
//! only parameters that operation takes.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

/// One kind of answer and where its ids lead.
struct Source {
    /// The operation whose answer is followed.
    from: &'static str,
    /// Its success status.
    status: &'static str,
    /// Parameter name -> runtime expression, for every target.
    parameters: &'static [(&'static str, &'static str)],
    /// The operations reached.
    to: &'static [&'static str],
}

const ESTABLISHMENT_ID: &[(&str, &str)] = &[("id", "$response.body#/id")];
const IN_ESTABLISHMENT: &str = "$request.path.id";

/// Every link in the document.
const SOURCES: &[Source] = &[
    Source {
        from: "create_establishment",
        status: "201",
        parameters: ESTABLISHMENT_ID,
        to: &[
            "get_establishment",
            "update_establishment",
            "add_member",
            "add_staff",
            "add_service",
            "list_bookings",
            "create_booking",
            "join_queue",
            "list_queue",
            "call_next",
            "create_webhook",
            "list_webhooks",
            "get_notification_settings",
            "set_notification_settings",
            "get_payment_policy",
            "set_payment_policy",
            "create_checkout",
            "suspend_establishment",
            "reinstate_establishment",
        ],
    },
    Source {
        from: "add_staff",
        status: "201",
        parameters: &[("id", IN_ESTABLISHMENT), ("staff_id", "$response.body#/id")],
        to: &["set_staff_hours", "add_time_off"],
    },
    Source {
        from: "add_service",
        status: "201",
        parameters: &[
            ("id", IN_ESTABLISHMENT),
            ("service_id", "$response.body#/id"),
        ],
        to: &["availability"],
    },
    Source {
        from: "create_booking",
        status: "201",
        parameters: &[
            ("id", "$response.body#/establishment_id"),
            ("booking_id", "$response.body#/id"),
        ],
        to: &["get_booking", "cancel_booking", "reschedule_booking"],
    },
    Source {
        from: "join_queue",
        status: "201",
        parameters: &[
            ("id", IN_ESTABLISHMENT),
            ("ticket_id", "$response.body#/id"),
        ],
        to: &[
            "get_ticket",
            "leave_queue",
            "start_ticket",
            "finish_ticket",
            "no_show_ticket",
        ],
    },
    Source {
        from: "create_webhook",
        status: "201",
        parameters: &[
            ("id", IN_ESTABLISHMENT),
            ("webhook_id", "$response.body#/id"),
        ],
        to: &[
            "delete_webhook",
            "rotate_webhook_secret",
            "enable_webhook",
            "list_deliveries",
        ],
    },
    Source {
        from: "create_checkout",
        status: "201",
        parameters: &[
            ("id", IN_ESTABLISHMENT),
            ("payment_id", "$response.body#/payment/id"),
        ],
        to: &["get_payment", "refresh_payment"],
    },
    Source {
        from: "register_device",
        status: "201",
        parameters: &[("token", "$response.body#/token")],
        to: &["remove_device"],
    },
    Source {
        from: "register",
        status: "201",
        parameters: &[("id", "$response.body#/user/id")],
        to: &["disable_user"],
    },
];

/// Adds [`SOURCES`] to the document.
pub struct Links;

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let Some(id) = operation.operation_id.as_deref() else {
                    continue;
                };
                for source in SOURCES.iter().filter(|s| s.from == id) {
                    let Some(RefOr::T(response)) =
                        operation.responses.responses.get_mut(source.status)
                    else {
                        continue;
                    };
                    for target in source.to {
                        // utoipa 5.5 writes `operation_id` for `operationId` (a bug):
                        // the field goes in as an extension, under its OpenAPI name.
                        let id = Extensions::from_iter([("operationId", *target)]);
                        let mut link = LinkBuilder::new().extensions(Some(id));
                        for (name, expression) in source.parameters {
                            link = link.parameter(*name, *expression);
                        }
                        response
                            .links
                            .insert((*target).to_owned(), RefOr::T(link.build()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    /// operationId -> the operation.
    fn operations(doc: &Value) -> BTreeMap<String, Value> {
        let mut found = BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(id) = operation["operationId"].as_str() {
                    found.insert(id.to_owned(), operation.clone());
                }
            }
        }
        found
    }

    #[test]
    fn every_link_is_in_the_document_and_names_an_operation_and_its_parameters() {
        let doc: Value = serde_json::from_str(&crate::openapi::document()).unwrap();
        let operations = operations(&doc);
        for source in SOURCES {
            let from = &operations[source.from];
            let links = &from["responses"][source.status]["links"];
            for target in source.to {
                let parameters: Vec<&str> = operations
                    .get(*target)
                    .unwrap_or_else(|| panic!("{} links to unknown {target}", source.from))
                    ["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(links[target]["operationId"], *target, "{}", source.from);
                for (name, expression) in source.parameters {
                    assert!(
                        parameters.contains(name),
                        "{} -> {target}: no parameter {name}",
                        source.from
                    );
                    assert_eq!(links[target]["parameters"][name], *expression);
                }
            }
        }
    }
}
