"""Versioned schema migrations for the workspace's SQLite store.

``MIGRATIONS[n]`` moves a store from version n-1 to n (``PRAGMA user_version``). Never edit
a released migration; append a new one.
"""

from __future__ import annotations

from audit_log.store import SCHEMA_STATEMENTS as AUDIT_SCHEMA

_V1 = [
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('researcher', 'owner', 'regulator', 'admin')),
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    """CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        tier TEXT NOT NULL CHECK (tier IN ('not_open', 'conditional', 'unconditional')),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE dataset_versions (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        version INTEGER NOT NULL,
        policy_toml TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        file_name TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        unit_count INTEGER NOT NULL,
        encrypted INTEGER NOT NULL DEFAULT 0,
        wrapped_key BLOB,
        bounding_seed TEXT NOT NULL,
        created_at TEXT NOT NULL,
        -- 第十二条: the risk-scan report (JSON); the version is published (queryable,
        -- listed) only once its owner has acknowledged the report.
        risk_report TEXT NOT NULL DEFAULT '{}',
        published_at TEXT,
        published_by INTEGER REFERENCES users(id),
        acknowledgement TEXT NOT NULL DEFAULT '',
        UNIQUE (dataset_id, version)
    )""",
    # 第十、十一条: every tier decision with its basis (and the de-identification step
    # when not-open data becomes conditional); the catalog shows this history.
    """CREATE TABLE dataset_tier_changes (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        from_tier TEXT NOT NULL,
        to_tier TEXT NOT NULL CHECK (to_tier IN ('not_open', 'conditional', 'unconditional')),
        basis TEXT NOT NULL CHECK (length(basis) > 0),
        deidentification TEXT NOT NULL DEFAULT '',
        changed_by INTEGER REFERENCES users(id),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE applications (
        id INTEGER PRIMARY KEY,
        researcher_id INTEGER NOT NULL REFERENCES users(id),
        request_json TEXT NOT NULL,
        scenario TEXT NOT NULL,
        purpose TEXT NOT NULL,
        commitment_accepted INTEGER NOT NULL,
        commitment_text TEXT NOT NULL DEFAULT '',
        provision_method TEXT NOT NULL DEFAULT 'sandbox',
        owner_id INTEGER REFERENCES users(id),
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        reason TEXT NOT NULL DEFAULT '',
        decided_by INTEGER REFERENCES users(id),
        decided_at TEXT,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        application_id INTEGER NOT NULL REFERENCES applications(id),
        researcher_id INTEGER NOT NULL REFERENCES users(id),
        owner_id INTEGER NOT NULL REFERENCES users(id),
        scope_json TEXT NOT NULL,
        epsilon_total REAL NOT NULL CHECK (epsilon_total > 0),
        delta_total REAL NOT NULL CHECK (delta_total >= 0 AND delta_total < 1),
        epsilon_per_query REAL NOT NULL CHECK (epsilon_per_query > 0),
        expires_at TEXT,
        reason TEXT NOT NULL DEFAULT '',
        signature TEXT NOT NULL DEFAULT '',
        signature_key TEXT NOT NULL DEFAULT '',
        signature_key_id TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE queries (
        id TEXT PRIMARY KEY,
        approval_id INTEGER REFERENCES approvals(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        sql TEXT NOT NULL,
        fingerprint TEXT NOT NULL DEFAULT '',
        cache_key TEXT,
        status TEXT NOT NULL CHECK (status IN ('released', 'refused', 'failed', 'cached')),
        error_code TEXT,
        epsilon REAL NOT NULL DEFAULT 0,
        delta REAL NOT NULL DEFAULT 0,
        response_json TEXT,
        audit_seq INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX queries_cache ON queries(cache_key) WHERE status = 'released'",
    "CREATE INDEX queries_user ON queries(user_id, created_at)",
    """CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        approval_id INTEGER NOT NULL REFERENCES approvals(id),
        query_id TEXT NOT NULL REFERENCES queries(id),
        epsilon REAL NOT NULL CHECK (epsilon >= 0),
        delta REAL NOT NULL CHECK (delta >= 0),
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX ledger_approval ON ledger(approval_id)",
    """CREATE TABLE suspensions (
        id INTEGER PRIMARY KEY,
        target_type TEXT NOT NULL CHECK (target_type IN ('user', 'approval')),
        target_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_by INTEGER REFERENCES users(id),
        automatic INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        lifted_at TEXT,
        lifted_by INTEGER REFERENCES users(id),
        lift_reason TEXT
    )""",
    "CREATE INDEX suspensions_target ON suspensions(target_type, target_id)",
    # 第十七条: objections against a decision, answered by the regulator.
    """CREATE TABLE objections (
        id INTEGER PRIMARY KEY,
        filed_by INTEGER NOT NULL REFERENCES users(id),
        target_type TEXT NOT NULL
            CHECK (target_type IN ('application', 'approval', 'suspension', 'tier_change')),
        target_id INTEGER NOT NULL,
        respondent_id INTEGER REFERENCES users(id),
        text TEXT NOT NULL CHECK (length(text) > 0),
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered')),
        answer TEXT,
        answered_by INTEGER REFERENCES users(id),
        answered_at TEXT,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    )""",
    """CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # SECURITY: the ledger is append-only like the audit log it mirrors.
    """CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
       BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END""",
    """CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
       BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END""",
    *AUDIT_SCHEMA,
]

# 2: zCDP accounting (ρ per charge), pure-ε approvals, global caps per dataset version
# across all approvals (issue: privacy engine; see sandbox/governance/ledger.py).
_V2 = [
    "ALTER TABLE ledger ADD COLUMN rho REAL CHECK (rho IS NULL OR rho >= 0)",
    "ALTER TABLE ledger ADD COLUMN rho_delta REAL NOT NULL DEFAULT 0 CHECK (rho_delta >= 0)",
    "ALTER TABLE approvals ADD COLUMN pure_dp INTEGER NOT NULL DEFAULT 0 CHECK (pure_dp IN (0, 1))",
    """CREATE TABLE dataset_budget_caps (
        dataset_version_id INTEGER PRIMARY KEY REFERENCES dataset_versions(id),
        epsilon_total REAL NOT NULL CHECK (epsilon_total > 0),
        delta_total REAL NOT NULL CHECK (delta_total >= 0 AND delta_total < 1),
        set_by INTEGER REFERENCES users(id),
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE ledger_datasets (
        ledger_id INTEGER NOT NULL REFERENCES ledger(id),
        dataset_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        PRIMARY KEY (ledger_id, dataset_version_id)
    )""",
    "CREATE INDEX ledger_datasets_version ON ledger_datasets(dataset_version_id)",
    """CREATE TRIGGER ledger_datasets_no_update BEFORE UPDATE ON ledger_datasets
       BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END""",
    """CREATE TRIGGER ledger_datasets_no_delete BEFORE DELETE ON ledger_datasets
       BEGIN SELECT RAISE(ABORT, 'the budget ledger is append-only'); END""",
]

# 3: production hardening — request rate limits and failed logins shared by every process
# serving the workspace (sandbox.store.rate_limits), and alerts on anomalies raised once each and
# logged (sandbox.governance.alerts; 第二十三条: warning and response).
_V3 = [
    # one row per key (API token hash or client address): the sliding window counter
    """CREATE TABLE rate_limit_counters (
        key TEXT PRIMARY KEY,
        window_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        previous INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # one row per failed console login per key: (address, user name) and (address, '')
    """CREATE TABLE login_failures (
        address TEXT NOT NULL,
        username TEXT NOT NULL,
        failed_at REAL NOT NULL
    )""",
    "CREATE INDEX login_failures_key ON login_failures(address, username, failed_at)",
    "CREATE INDEX login_failures_time ON login_failures(failed_at)",
    """CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('refusal_burst', 'budget', 'differencing', 'averaging')),
        dedupe_key TEXT NOT NULL UNIQUE,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        researcher_id INTEGER REFERENCES users(id),
        approval_id INTEGER REFERENCES approvals(id),
        owner_id INTEGER REFERENCES users(id),
        summary TEXT NOT NULL,
        details_json TEXT NOT NULL,
        audit_seq INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX alerts_owner ON alerts(owner_id, id)",
    "CREATE INDEX alerts_subject ON alerts(kind, researcher_id, approval_id)",
    # repeats answered from the release cache (they leave no other trace in the store)
    """CREATE TABLE query_repeats (
        id INTEGER PRIMARY KEY,
        query_id TEXT NOT NULL REFERENCES queries(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        approval_id INTEGER REFERENCES approvals(id),
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX query_repeats_approval ON query_repeats(approval_id, query_id)",
    # alerts evaluate the queries made since their last pass
    "CREATE INDEX queries_created ON queries(created_at)",
]

# 4: the collusion cap per dataset (issue 12, finding 7; sandbox/governance/dataset_caps.py): a total
# (ε, δ) across all researchers, approvals and versions of one dataset, set by its owner.
# Append-only history: the newest row is in force (unless a newer version's policy declares
# a cap). The caps of version 2, per dataset *version* and never set outside tests, move
# here, the strictest per dataset, and their table goes.
_V4 = [
    """CREATE TABLE dataset_budget_cap_changes (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        epsilon_total REAL NOT NULL CHECK (epsilon_total > 0),
        delta_total REAL NOT NULL CHECK (delta_total >= 0 AND delta_total < 1),
        source TEXT NOT NULL CHECK (source IN ('owner', 'migration')),
        -- the dataset's newest version when the cap was set: a version registered later
        -- whose policy declares a budget_cap supersedes this row
        after_version_id INTEGER REFERENCES dataset_versions(id),
        reason TEXT NOT NULL DEFAULT '',
        set_by INTEGER REFERENCES users(id),
        audit_seq INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX dataset_budget_cap_changes_dataset ON dataset_budget_cap_changes(dataset_id, id)",
    """CREATE TRIGGER dataset_budget_cap_changes_no_update BEFORE UPDATE ON dataset_budget_cap_changes
       BEGIN SELECT RAISE(ABORT, 'the collusion cap history is append-only'); END""",
    """CREATE TRIGGER dataset_budget_cap_changes_no_delete BEFORE DELETE ON dataset_budget_cap_changes
       BEGIN SELECT RAISE(ABORT, 'the collusion cap history is append-only'); END""",
    """INSERT INTO dataset_budget_cap_changes (dataset_id, epsilon_total, delta_total, source,
           after_version_id, reason, set_by, created_at)
       SELECT v.dataset_id, MIN(c.epsilon_total), MIN(c.delta_total), 'migration',
              (SELECT MAX(id) FROM dataset_versions WHERE dataset_id = v.dataset_id),
              'moved from the caps per dataset version (schema 4)', NULL, MAX(c.created_at)
       FROM dataset_budget_caps c JOIN dataset_versions v ON v.id = c.dataset_version_id
       GROUP BY v.dataset_id""",
    "DROP TABLE dataset_budget_caps",
]

# 5: publication and tier reviews co-signed by the regulator, and the de-identified derivative
# behind every unconditional download (issue 14; sandbox/governance/publication.py, sandbox/governance/deidentify.py;
# 第十、十一、十二条).
_V5 = [
    """CREATE TABLE publication_reviews (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id),
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        kind TEXT NOT NULL CHECK (kind IN ('publication', 'tier_change')),
        from_tier TEXT NOT NULL,
        to_tier TEXT NOT NULL CHECK (to_tier IN ('not_open', 'conditional', 'unconditional')),
        basis TEXT NOT NULL DEFAULT '',
        deidentification TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('proposed', 'declined', 'expert_reviewed',
                                               'awaiting_regulator', 'approved', 'rejected')),
        proposed_by INTEGER REFERENCES users(id),
        owner_answer TEXT NOT NULL DEFAULT '',
        expert_review TEXT,
        submitted_by INTEGER REFERENCES users(id),
        submitted_at TEXT,
        scan_json TEXT,
        scan_passed INTEGER,
        acknowledged_findings TEXT NOT NULL DEFAULT '',
        k_target INTEGER,
        derivative_id INTEGER,
        owner_signature TEXT,
        regulator_signature TEXT,
        decided_by INTEGER REFERENCES users(id),
        decided_at TEXT,
        decision_reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX publication_reviews_dataset ON publication_reviews(dataset_id, status)",
    # PRIVACY: the only file an unconditional download ever serves (never the stored version)
    """CREATE TABLE dataset_derivatives (
        id INTEGER PRIMARY KEY,
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        review_id INTEGER NOT NULL REFERENCES publication_reviews(id),
        file_name TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        rows INTEGER NOT NULL,
        recipe_json TEXT NOT NULL,
        scan_json TEXT NOT NULL,
        k_target INTEGER NOT NULL,
        approved_at TEXT,
        created_at TEXT NOT NULL
    )""",
    "ALTER TABLE dataset_tier_changes ADD COLUMN review_id INTEGER REFERENCES publication_reviews(id)",
    "ALTER TABLE dataset_tier_changes ADD COLUMN signed_by INTEGER REFERENCES users(id)",
]

# 6: a researcher's saved queries in the console's workbench (issue 15; sandbox/store/saved_queries.py):
# only the researcher's own SQL text, never data or results; one row per (user, name).
_V6 = [
    """CREATE TABLE saved_queries (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        name TEXT NOT NULL,
        sql TEXT NOT NULL,
        approval_id INTEGER REFERENCES approvals(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (user_id, name)
    )""",
]

# 7: enforcement and time limits (issue 14; sandbox/governance/enforcement.py, sandbox/governance/deadlines.py;
# 第十七、二十二、二十五、二十六条): terminations (final, unlike suspensions), rectification
# orders to owners with due dates, due dates of applications and objections, objections
# against terminations and rectification orders, and alerts that can be handled (kinds are
# checked in code, so alerts and objections are rebuilt without their closed CHECK lists).
_V7 = [
    """CREATE TABLE terminations (
        id INTEGER PRIMARY KEY,
        target_type TEXT NOT NULL CHECK (target_type IN ('user', 'approval')),
        target_id INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (length(reason) > 0),
        created_by INTEGER NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        reversed_at TEXT,
        reversed_by INTEGER REFERENCES users(id),
        reverse_reason TEXT,
        objection_id INTEGER REFERENCES objections(id)
    )""",
    "CREATE INDEX terminations_target ON terminations(target_type, target_id)",
    """CREATE TABLE rectification_orders (
        id INTEGER PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        dataset_id INTEGER REFERENCES datasets(id),
        issued_by INTEGER NOT NULL REFERENCES users(id),
        what TEXT NOT NULL CHECK (length(what) > 0),
        due_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'submitted', 'closed')),
        response TEXT NOT NULL DEFAULT '',
        responded_at TEXT,
        closed_by INTEGER REFERENCES users(id),
        closed_at TEXT,
        close_note TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    )""",
    "ALTER TABLE applications ADD COLUMN due_at TEXT",
    """CREATE TABLE objections_v7 (
        id INTEGER PRIMARY KEY,
        filed_by INTEGER NOT NULL REFERENCES users(id),
        target_type TEXT NOT NULL,
        target_id INTEGER NOT NULL,
        respondent_id INTEGER REFERENCES users(id),
        text TEXT NOT NULL CHECK (length(text) > 0),
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered')),
        answer TEXT,
        answered_by INTEGER REFERENCES users(id),
        answered_at TEXT,
        created_at TEXT NOT NULL,
        due_at TEXT
    )""",
    """INSERT INTO objections_v7 (id, filed_by, target_type, target_id, respondent_id, text, status, answer,
           answered_by, answered_at, created_at)
       SELECT id, filed_by, target_type, target_id, respondent_id, text, status, answer, answered_by,
              answered_at, created_at FROM objections""",
    "DROP TABLE objections",
    "ALTER TABLE objections_v7 RENAME TO objections",
    """CREATE TABLE alerts_v7 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        dedupe_key TEXT NOT NULL UNIQUE,
        severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        researcher_id INTEGER REFERENCES users(id),
        approval_id INTEGER REFERENCES approvals(id),
        owner_id INTEGER REFERENCES users(id),
        summary TEXT NOT NULL,
        details_json TEXT NOT NULL,
        audit_seq INTEGER,
        created_at TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        occurrences INTEGER NOT NULL DEFAULT 1,
        last_seen_at TEXT,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
        handled_by INTEGER REFERENCES users(id),
        handled_at TEXT,
        note TEXT NOT NULL DEFAULT ''
    )""",
    """INSERT INTO alerts_v7 (id, kind, dedupe_key, severity, researcher_id, approval_id, owner_id, summary,
           details_json, audit_seq, created_at, last_seen_at)
       SELECT id, kind, dedupe_key, severity, researcher_id, approval_id, owner_id, summary, details_json,
              audit_seq, created_at, created_at FROM alerts""",
    "DROP TABLE alerts",
    "ALTER TABLE alerts_v7 RENAME TO alerts",
    "CREATE INDEX alerts_owner ON alerts(owner_id, id)",
    "CREATE INDEX alerts_subject ON alerts(kind, researcher_id, approval_id)",
]

# 8: organisations and jurisdictions (issue 14; sandbox/governance/organisations.py; 第五、二十八条), and
# each owner's decision on an application spanning several organisations' datasets.
_V8 = [
    """CREATE TABLE organisations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('bureau', 'district_bureau', 'research_institution', 'enterprise')),
        district TEXT,
        created_at TEXT NOT NULL
    )""",
    "ALTER TABLE users ADD COLUMN org_id INTEGER REFERENCES organisations(id)",
    # regulators: 'city' (NULL reads as city) or one district's name
    "ALTER TABLE users ADD COLUMN jurisdiction TEXT",
    "ALTER TABLE datasets ADD COLUMN org_id INTEGER REFERENCES organisations(id)",
    """CREATE TABLE application_decisions (
        id INTEGER PRIMARY KEY,
        application_id INTEGER NOT NULL REFERENCES applications(id),
        owner_id INTEGER NOT NULL REFERENCES users(id),
        decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        scope_json TEXT NOT NULL DEFAULT '{}',
        epsilon_total REAL,
        delta_total REAL,
        epsilon_per_query REAL,
        expires_at TEXT,
        reason TEXT NOT NULL DEFAULT '',
        decided_at TEXT NOT NULL,
        UNIQUE (application_id, owner_id)
    )""",
]

# 9: objections and suggestions from the public, without login, with evidence and a
# tracking code (issue 14; sandbox/governance/public_objections.py; 第十七条).
_V9 = [
    """CREATE TABLE public_objections (
        id INTEGER PRIMARY KEY,
        tracking_code TEXT NOT NULL UNIQUE,
        target_type TEXT NOT NULL,
        target TEXT NOT NULL,
        description TEXT NOT NULL,
        respondent_id INTEGER REFERENCES users(id),
        text TEXT NOT NULL CHECK (length(text) > 0),
        contact TEXT NOT NULL DEFAULT '',
        evidence_json TEXT NOT NULL DEFAULT '[]',
        address_key TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered')),
        answer TEXT,
        answered_by INTEGER REFERENCES users(id),
        answered_at TEXT,
        due_at TEXT,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX public_objections_address ON public_objections(address_key, created_at)",
]

# 10: researcher self-service (issue 14; sandbox/governance/self_service.py): when each API token was last
# used (recorded at most once a minute per token), shown to its owner.
_V10 = [
    "ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT",
]

# 11: annual opening plans with public consultation (第十三条) and each dataset's legal basis or
# consent reference for personal information (第二十条); issue 14.
_V11 = [
    """CREATE TABLE opening_plans (
        id INTEGER PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id),
        org_id INTEGER REFERENCES organisations(id),
        year INTEGER NOT NULL,
        items_json TEXT NOT NULL,
        comment_until TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE opening_plan_comments (
        id INTEGER PRIMARY KEY,
        plan_id INTEGER NOT NULL REFERENCES opening_plans(id),
        text TEXT NOT NULL CHECK (length(text) > 0),
        contact TEXT NOT NULL DEFAULT '',
        address_key TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX opening_plan_comments_address ON opening_plan_comments(address_key, created_at)",
    "ALTER TABLE datasets ADD COLUMN legal_basis TEXT",
]

# 12: attachments of applications and evidence of signed-in objections (issue 14; 第十五、十七条;
# sandbox/governance/attachments.py): the content is stored under attachments/ by its SHA-256, never under
# the uploaded name; the row keeps the shown name, the type found by content, size and hash.
_V12 = [
    """CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        owner_type TEXT NOT NULL CHECK (owner_type IN ('application', 'objection')),
        owner_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        bytes INTEGER NOT NULL CHECK (bytes > 0),
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        uploaded_by INTEGER NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX attachments_owner ON attachments(owner_type, owner_id)",
    # 第六条 分类分级: each dataset's category, grade and basis (JSON; sandbox/governance/classification.py)
    "ALTER TABLE datasets ADD COLUMN classification TEXT",
]

MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8, 9: _V9, 10: _V10, 11: _V11,
                                    12: _V12}
SCHEMA_VERSION = max(MIGRATIONS)
