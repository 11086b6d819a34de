-- The hub's schema as the hub before schema migrations created it on postgresql: the statements
-- SQLAlchemy ran for sync/hub/storage.py's meta.create_all() at commit 1cdaed0 (the last hub
-- without Alembic), recorded with a before_cursor_execute listener on a new, empty database.
-- tests/test_hub_schema.py builds a 'pre-migration' hub database from it.

CREATE TABLE hub_nodes (
	name VARCHAR(64) NOT NULL,
	pubkey VARCHAR(64),
	created_at VARCHAR(32) NOT NULL,
	enrolled_at VARCHAR(32),
	last_contact VARCHAR(32),
	status TEXT DEFAULT '{}' NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE hub_codes (
	code_hash VARCHAR(64) NOT NULL,
	node VARCHAR(64) NOT NULL,
	created_at VARCHAR(32) NOT NULL,
	expires_at VARCHAR(32) NOT NULL,
	used_at VARCHAR(32),
	PRIMARY KEY (code_hash)
);

CREATE TABLE hub_nonces (
	node VARCHAR(64) NOT NULL,
	nonce VARCHAR(64) NOT NULL,
	seen_at VARCHAR(32) NOT NULL,
	PRIMARY KEY (node, nonce)
);

CREATE TABLE hub_upload_chunks (
	node VARCHAR(64) NOT NULL,
	batch_id VARCHAR(64) NOT NULL,
	"offset" INTEGER NOT NULL,
	data BYTEA NOT NULL,
	total INTEGER NOT NULL,
	at VARCHAR(32) NOT NULL,
	PRIMARY KEY (node, batch_id, "offset")
);

CREATE TABLE hub_batches (
	node VARCHAR(64) NOT NULL,
	batch_id VARCHAR(64) NOT NULL,
	seq_from BIGINT NOT NULL,
	seq_to BIGINT NOT NULL,
	records INTEGER NOT NULL,
	bytes INTEGER NOT NULL,
	via VARCHAR(16) NOT NULL,
	day VARCHAR(10) NOT NULL,
	received_at VARCHAR(32) NOT NULL,
	receipt TEXT NOT NULL,
	PRIMARY KEY (node, batch_id)
);

CREATE TABLE hub_records (
	node VARCHAR(64) NOT NULL,
	kind VARCHAR(32) NOT NULL,
	record_id VARCHAR(128) NOT NULL,
	version INTEGER NOT NULL,
	payload TEXT NOT NULL,
	digest VARCHAR(64) NOT NULL,
	batch_id VARCHAR(64) NOT NULL,
	day VARCHAR(10) NOT NULL,
	received_at VARCHAR(32) NOT NULL,
	PRIMARY KEY (node, kind, record_id, version)
);

CREATE INDEX hub_records_day ON hub_records (node, day);

CREATE TABLE hub_downlink (
	seq BIGSERIAL NOT NULL,
	node VARCHAR(64) NOT NULL,
	kind VARCHAR(32) NOT NULL,
	record_id VARCHAR(128) NOT NULL,
	version INTEGER NOT NULL,
	payload TEXT NOT NULL,
	created_at VARCHAR(32) NOT NULL,
	PRIMARY KEY (seq)
);

CREATE INDEX hub_downlink_node ON hub_downlink (node, seq);

CREATE TABLE hub_audit_heads (
	id BIGSERIAL NOT NULL,
	node VARCHAR(64) NOT NULL,
	seq BIGINT NOT NULL,
	hash VARCHAR(64) NOT NULL,
	received_at VARCHAR(32) NOT NULL,
	problem TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX hub_audit_heads_node ON hub_audit_heads (node, id);

CREATE TABLE hub_users (
	username VARCHAR(32) NOT NULL,
	role VARCHAR(16) NOT NULL,
	password_hash VARCHAR(255) NOT NULL,
	created_at VARCHAR(32) NOT NULL,
	disabled_at VARCHAR(32),
	PRIMARY KEY (username)
);

CREATE TABLE hub_login_failures (
	id BIGSERIAL NOT NULL,
	key VARCHAR(128) NOT NULL,
	at VARCHAR(32) NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX hub_login_failures_key ON hub_login_failures (key, at);

CREATE TABLE hub_settings (
	key VARCHAR(64) NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (key)
);

