-- A client address is personal data, and the audit log can never be erased (append-only), so
-- from now on it keeps a keyed pseudonym of the address instead of the address itself
-- (api/audit.py, client_reference): one address always gives the same value, so events from
-- one client still line up, and operators find an address's events by giving the address
-- (GET /api/v1/audit?client_ip=...), but a copy of the database alone does not reveal it.
ALTER TABLE audit_log RENAME COLUMN client_ip TO client_ref;
COMMENT ON COLUMN audit_log.client_ref IS
    'keyed pseudonym of the client address (HMAC-SHA-256 under a key derived from the secret key)';
