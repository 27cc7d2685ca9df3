//! The one schema for both backends: only types that SQLite and PostgreSQL share.
// Written by hand to match migrations/{sqlite,postgres}; keep the three in step.

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        mandated_reporter -> Bool,
        created_at -> BigInt,
        /// false: single sign-on only.
        password_login -> Bool,
    }
}

diesel::table! {
    places (id) {
        id -> Text,
        name -> Text,
        basomrade -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        organization_id -> Text,
        role -> Text,
        password_hash -> Text,
        disabled -> Bool,
        token_epoch -> BigInt,
        pseudonym -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    user_places (user_id, place_id) {
        user_id -> Text,
        place_id -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Text,
        throttle_key -> Text,
        failed_at -> BigInt,
    }
}

diesel::table! {
    observations (id) {
        id -> Text,
        place_id -> Text,
        observed_at -> BigInt,
        category -> Text,
        description -> Nullable<Text>,
        reporter_id -> Text,
        reporter_org_id -> Text,
        created_at -> BigInt,
        legal_hold -> Bool,
    }
}

diesel::table! {
    observation_persons (id) {
        id -> Text,
        observation_id -> Text,
        position -> Integer,
        description -> Text,
        estimated_birth_year -> Nullable<Integer>,
        age_uncertain -> Bool,
    }
}

diesel::table! {
    situation_reports (id) {
        id -> Text,
        place_id -> Text,
        title -> Text,
        valid_from -> BigInt,
        valid_until -> Nullable<BigInt>,
        author_id -> Text,
        author_org_id -> Text,
        created_at -> BigInt,
        legal_hold -> Bool,
    }
}

diesel::table! {
    report_sections (id) {
        id -> Text,
        report_id -> Text,
        position -> Integer,
        audience -> Text,
        body -> Text,
    }
}

diesel::table! {
    referrals (id) {
        id -> Text,
        receiving_org_id -> Text,
        place_id -> Nullable<Text>,
        reporter_id -> Text,
        reporter_org_id -> Text,
        child_name -> Nullable<Text>,
        child_personal_identity_number -> Nullable<Text>,
        child_alias -> Nullable<Text>,
        child_estimated_birth_year -> Nullable<Integer>,
        child_age_uncertain -> Bool,
        child_description -> Nullable<Text>,
        concern -> Nullable<Text>,
        status -> Text,
        status_changed_at -> BigInt,
        created_at -> BigInt,
        legal_hold -> Bool,
    }
}

diesel::table! {
    referral_feedback (id) {
        id -> Text,
        referral_id -> Text,
        status -> Text,
        note -> Nullable<Text>,
        author_id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    referral_consents (id) {
        id -> Text,
        referral_id -> Text,
        given_by -> Text,
        scope -> Text,
        valid_until -> BigInt,
        released_details -> Nullable<Text>,
        recorded_by -> Text,
        created_at -> BigInt,
        released_to -> Text,
        withdrawn_at -> Nullable<BigInt>,
        withdrawn_by -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> BigInt,
        actor_id -> Nullable<Text>,
        actor_username -> Nullable<Text>,
        actor_org_id -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        action -> Text,
        record_kind -> Nullable<Text>,
        record_id -> Nullable<Text>,
        parts -> Text,
        outcome -> Text,
        request_id -> Nullable<Text>,
        purpose -> Nullable<Text>,
        client -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        changes -> Nullable<Text>,
        channel -> Nullable<Text>,
        /// The writer's chain the entry belongs to (`audit_head.id`).
        chain -> BigInt,
        /// The hash of the policy set that decided (NULL before it was recorded).
        policy_hash -> Nullable<Text>,
    }
}

diesel::table! {
    /// TOTP second factors (secret sealed with SAMVERKAN_TOTP_KEY).
    totp_factors (user_id) {
        user_id -> Text,
        secret_sealed -> Text,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
        last_step -> BigInt,
    }
}

diesel::table! {
    /// Single-use recovery codes, as keyed hashes.
    recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The policy sets in force, in order; the highest position is current.
    policy_versions (position) {
        position -> BigInt,
        hash -> Text,
        loaded_at -> BigInt,
        loaded_by -> Text,
        files -> Text,
    }
}

diesel::table! {
    cache_generation (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::table! {
    /// One row per hash chain: its last entry and how far its keys are indexed.
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
        /// audit_keys holds every entry up to here.
        indexed_seq -> BigInt,
    }
}

diesel::table! {
    /// The looked-up columns of audit_log, indexed; filled by the writer in batches.
    audit_keys (seq) {
        seq -> BigInt,
        at -> BigInt,
        actor_username -> Nullable<Text>,
        record_id -> Nullable<Text>,
    }
}

diesel::joinable!(users -> organizations (organization_id));
diesel::table! {
    /// Observations per month (Europe/Stockholm), place and category; outlives retention.
    observation_counts (month, place_id, category, shard) {
        month -> Text,
        place_id -> Text,
        category -> Text,
        count -> BigInt,
        shard -> BigInt,
    }
}

diesel::table! {
    /// Orosanmälningar per filing month, receiving organisation, status and timing of
    /// the first decision; outlives retention.
    referral_counts (month, receiving_org_id, status, timing, shard) {
        month -> Text,
        receiving_org_id -> Text,
        status -> Text,
        timing -> Text,
        count -> BigInt,
        shard -> BigInt,
    }
}

diesel::table! {
    /// Days from filing to the first feedback decision, per filing month and
    /// receiving organisation; outlives retention.
    referral_decision_days (month, receiving_org_id, days, shard) {
        month -> Text,
        receiving_org_id -> Text,
        days -> Integer,
        count -> BigInt,
        shard -> BigInt,
    }
}

diesel::table! {
    /// Live alerts: what happened to which record (no content, no recipient).
    events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        record_kind -> Text,
        record_id -> Text,
    }
}

diesel::joinable!(user_places -> users (user_id));
diesel::joinable!(user_places -> places (place_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(referral_feedback -> users (author_id));
diesel::joinable!(observation_persons -> observations (observation_id));
diesel::joinable!(report_sections -> situation_reports (report_id));
diesel::joinable!(referral_feedback -> referrals (referral_id));
diesel::joinable!(referral_consents -> referrals (referral_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    places,
    users,
    user_places,
    sessions,
    refresh_tokens,
    login_failures,
    observations,
    observation_persons,
    situation_reports,
    report_sections,
    referrals,
    referral_feedback,
    referral_consents,
    audit_log,
    audit_head,
    audit_keys,
    cache_generation,
    observation_counts,
    referral_counts,
    referral_decision_days,
    events,
);
