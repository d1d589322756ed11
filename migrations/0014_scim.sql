-- SCIM 2.0 provisioning (issue 18). Users and groups the IdP created are
-- marked `provisioned_by = 'scim'`; local (break-glass) users keep NULL and
-- SCIM can neither see nor change them. The SCIM resources themselves (the
-- IdP's attributes, as JSON) live beside the bastion rows, keyed by the
-- SCIM id; `active = 0` makes a user ineligible for every group grant, and
-- `lock_id` is the lock deprovisioning raised (lifted on reactivation).
ALTER TABLE users ADD COLUMN provisioned_by TEXT NULL;
ALTER TABLE user_groups ADD COLUMN provisioned_by TEXT NULL;

CREATE TABLE scim_users (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL UNIQUE,
    scim_key TEXT NOT NULL UNIQUE,
    external_id TEXT NULL,
    resource TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    lock_id TEXT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE scim_groups (
    id TEXT PRIMARY KEY,
    group_name TEXT NOT NULL UNIQUE,
    display_key TEXT NOT NULL UNIQUE,
    external_id TEXT NULL,
    resource TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
