// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (subject) {
        subject -> Text,
        user_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    concerts (id) {
        id -> Int8,
        title -> Text,
        artist -> Text,
        venue -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_fingerprint -> Text,
        outcome -> Text,
        outcome_data -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox_events (id) {
        id -> Int8,
        #[sql_name = "type"]
        type_ -> Text,
        occurred_at -> Timestamptz,
        reservation_id -> Nullable<Int8>,
        user_id -> Nullable<Int8>,
        performance_id -> Nullable<Int8>,
        seat_no -> Nullable<Int4>,
        amount -> Nullable<Int8>,
        balance -> Nullable<Int8>,
        claim -> Nullable<Int8>,
        claimed_until -> Nullable<Timestamptz>,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    payment_reservations (payment_id, reservation_id) {
        payment_id -> Int8,
        reservation_id -> Int8,
        amount -> Int8,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        reservation_id -> Int8,
        user_id -> Int8,
        amount -> Int8,
        status -> Text,
        paid_at -> Timestamptz,
    }
}

diesel::table! {
    performances (id) {
        id -> Int8,
        concert_id -> Int8,
        starts_at -> Timestamptz,
        total_seats -> Int4,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    reservations (id) {
        id -> Int8,
        user_id -> Int8,
        performance_id -> Int8,
        seat_no -> Int4,
        price -> Int8,
        status -> Text,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    room_performances (performance_id) {
        performance_id -> Int8,
        room_id -> Text,
    }
}

diesel::table! {
    rooms (id) {
        id -> Text,
        name -> Text,
        mode -> Text,
        entry -> Text,
        closes_at -> Nullable<Timestamptz>,
        challenge_difficulty -> Int4,
        paused -> Nullable<Bool>,
        admit_per_second -> Nullable<Int4>,
        max_active -> Nullable<Int4>,
        active_ttl_seconds -> Nullable<Int4>,
        opens_at -> Nullable<Timestamptz>,
        version -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    seats (performance_id, seat_no) {
        performance_id -> Int8,
        seat_no -> Int4,
        grade -> Text,
        price -> Int8,
        status -> Text,
        hold_expires_at -> Nullable<Timestamptz>,
        reservation_id -> Nullable<Int8>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    wallet_entries (id) {
        id -> Int8,
        user_id -> Int8,
        amount -> Int8,
        reason -> Text,
        balance_after -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    wallets (user_id) {
        user_id -> Int8,
        balance -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(accounts -> users (user_id));
diesel::joinable!(payment_reservations -> payments (payment_id));
diesel::joinable!(payment_reservations -> reservations (reservation_id));
diesel::joinable!(payments -> reservations (reservation_id));
diesel::joinable!(payments -> users (user_id));
diesel::joinable!(performances -> concerts (concert_id));
diesel::joinable!(reservations -> users (user_id));
diesel::joinable!(room_performances -> performances (performance_id));
diesel::joinable!(room_performances -> rooms (room_id));
diesel::joinable!(seats -> performances (performance_id));
diesel::joinable!(wallet_entries -> wallets (user_id));
diesel::joinable!(wallets -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    concerts,
    idempotency_keys,
    outbox_events,
    payment_reservations,
    payments,
    performances,
    reservations,
    room_performances,
    rooms,
    seats,
    users,
    wallet_entries,
    wallets,
);
