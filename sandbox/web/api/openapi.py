"""The OpenAPI 3.1 document of the JSON API, served at ``GET /api/v1/openapi.json`` (issue 8).

The document is written here as data (one row per operation) rather than generated from
the URL map, so that a route added without documentation is caught:
``tests/test_openapi.py`` fails when the routes registered under ``/api/v1`` and the paths
listed here differ, and validates real responses against the schemas below.
Schemas are JSON Schema 2020-12 (OpenAPI 3.1 uses it unchanged). Number ranges come from
``sandbox.store.request_limits``, the one place that defines them.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify

from sandbox.store import request_limits as limits

bp = Blueprint("api_openapi", __name__)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NUMBER = {"type": "number"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
CELL = {"type": ["string", "number", "integer", "boolean", "null"]}
OBJECT = {"type": "object"}
#: A total budget as an owner grants it (a decision) or caps a dataset with it (the same range).
EPSILON_TOTAL = {"type": "number", "exclusiveMinimum": 0, "maximum": 1000}
DELTA_TOTAL = {"type": "number", "minimum": 0, "maximum": 0.01}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "minLength": 1},
                    "message": {"type": "string", "minLength": 1},
                    "position": {
                        "type": ["object", "null"],
                        "description": "Where in the SQL the refusal applies (line, column, highlight).",
                    },
                },
            }
        },
    },
    "ApprovalId": {
        "description": "An approval's number (a numeric string is accepted).",
        "type": ["integer", "string"],
    },
    "QueryRequest": {
        "type": "object",
        "required": ["approval_id", "sql"],
        "properties": {
            "approval_id": _ref("ApprovalId"),
            "sql": {
                "type": "string",
                "minLength": 1,
                "maxLength": limits.SQL_MAX_CHARS,
                "description": "One SELECT; datasets are tables. Unicode scalar values only "
                "(a lone surrogate such as \\ud800 is refused: invalid_sql_text).",
            },
            "epsilon": {
                "type": ["number", "null"],
                "minimum": limits.EPSILON_MIN,
                "maximum": limits.EPSILON_MAX,
                "description": "Privacy loss to spend; at least "
                f"{limits.EPSILON_MIN:g}, at most the approval's per-query cap "
                "(default: min(cap, 1)).",
            },
            "confidence": {
                "type": "number",
                "minimum": limits.CONFIDENCE_MIN,
                "maximum": limits.CONFIDENCE_MAX,
                "default": limits.CONFIDENCE_DEFAULT,
            },
        },
    },
    "PreviewRequest": {
        "allOf": [_ref("QueryRequest")],
        "type": "object",
        "properties": {
            "accuracy": {
                "type": "object",
                "required": ["column", "half_width"],
                "properties": {
                    "column": {"type": "string"},
                    "half_width": {"type": "number", "exclusiveMinimum": 0,
                                   "maximum": limits.HALF_WIDTH_MAX},
                    "confidence": {"type": "number", "minimum": limits.CONFIDENCE_MIN,
                                   "maximum": limits.CONFIDENCE_MAX},
                },
            },
            "expected_rows": {"type": "integer", "minimum": limits.EXPECTED_ROWS_MIN,
                              "maximum": limits.EXPECTED_ROWS_MAX},
        },
    },
    "Accuracy": {
        "type": "object",
        "required": ["confidence", "intervals"],
        "properties": {
            "confidence": NUMBER,
            "method": {"type": "string"},
            "intervals": {
                "type": "array",
                "description": "Per row, [lower, upper] at the confidence (clipped to the public "
                               "bounds, so not symmetric in general); null ends are unbounded.",
                "items": {
                    "oneOf": [
                        {"type": "null"},
                        {"type": "array", "items": NULLABLE_NUMBER, "minItems": 2, "maxItems": 2},
                    ]
                },
            },
            "public_range": {
                "type": "array", "items": NULLABLE_NUMBER, "minItems": 2, "maxItems": 2,
                "description": "The range the declared bounds allow for the true figure "
                               "(null: open on that side).",
            },
            "not_informative": {
                "type": "array", "items": {"type": "boolean"},
                "description": "Per row: the interval covers at least half of public_range "
                               "(open ranges: it reaches zero), or is missing.",
            },
        },
    },
    "Budget": {
        "type": "object",
        "required": ["approval_id", "epsilon", "delta"],
        "properties": {
            "approval_id": {"type": "integer"},
            "epsilon": _ref("Spending"),
            "delta": _ref("Spending"),
            "epsilon_per_query": NUMBER,
            "releases": {"type": "integer"},
        },
    },
    "Spending": {
        "type": "object",
        "required": ["total", "spent", "remaining"],
        "properties": {"total": NUMBER, "spent": NUMBER, "remaining": NUMBER},
    },
    "Receipt": {
        "type": "object",
        "required": ["query_id", "log_index", "leaf_hash", "tree_size"],
        "properties": {
            "query_id": {"type": "string"},
            "log_index": {"type": "integer"},
            "leaf_hash": {"type": "string"},
            "tree_size": {"type": "integer"},
        },
    },
    "QueryResponse": {
        "type": "object",
        "required": [
            "query_id",
            "columns",
            "rows",
            "accuracy",
            "epsilon_spent",
            "budget",
            "receipt",
        ],
        "properties": {
            "query_id": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array", "items": CELL}},
            "accuracy": {"type": "object", "additionalProperties": _ref("Accuracy")},
            "epsilon_spent": NUMBER,
            "delta_spent": NUMBER,
            "budget": _ref("Budget"),
            "receipt": _ref("Receipt"),
            "cached": {"type": "boolean"},
            "engine": {"enum": ["duckdb", "spark"],
                       "description": "The engine that computed the exact aggregates (issue 16)."},
            "notes": {"type": "array", "items": {"type": "string"}},
            "accuracy_note": {"type": "string",
                              "description": "What the intervals cover: the noise, not the bias "
                                             "of bounding and clamping."},
        },
    },
    "PreviewResponse": {
        "type": "object",
        "required": ["preview", "epsilon", "columns", "budget"],
        "properties": {
            "preview": {"const": True},
            "epsilon": NUMBER,
            "cost": OBJECT,
            "confidence": NUMBER,
            "columns": OBJECT,
            "mechanisms": {"type": "array"},
            "within_per_query_cap": {"type": "boolean"},
            "affordable": {"type": "boolean"},
            "budget": _ref("Budget"),
        },
    },
    "Dataset": {
        "type": "object",
        "required": ["name", "tier", "columns"],
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "tier": {"type": "string"},
            "privacy_unit": {"type": ["string", "null"]},
            "version": {"type": ["integer", "null"]},
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string"},
                        "sensitivity": {"type": "string"},
                        "unit": {"type": "string", "description": "the policy's unit (\"元\", \"岁\"); \"\" if none"},
                    },
                },
            },
        },
    },
    "DatasetList": {
        "type": "object",
        "required": ["datasets"],
        "properties": {"datasets": {"type": "array", "items": _ref("Dataset")}},
    },
    "ApplicationRequest": {
        "type": "object",
        "required": ["datasets", "scenario", "purpose", "commitment_accepted"],
        "properties": {
            "datasets": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "columns": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "aggregates": {"type": "array", "items": {"type": "string"}},
            "scenario": {"type": "string"},
            "purpose": {"type": "string"},
            "provision_method": {"type": "string", "default": "sandbox"},
            "commitment_accepted": {"const": True},
        },
    },
    "ApplicationCreated": {
        "type": "object",
        "required": ["application_id", "status"],
        "properties": {"application_id": {"type": "integer"}, "status": {"type": "string"}},
    },
    "DecisionRequest": {
        "type": "object",
        "required": ["decision"],
        "properties": {
            "decision": {"enum": ["approve", "reject"]},
            "reason": {"type": "string"},
            "epsilon_total": EPSILON_TOTAL,
            "delta_total": DELTA_TOTAL,
            "epsilon_per_query": {"type": "number", "exclusiveMinimum": 0},
            "expires": {
                "type": "string",
                "minLength": 1,
                "description": "A future date (YYYY-MM-DD) or RFC 3339 time with a zone.",
            },
            "columns": {"type": "object", "description": "Narrow the approved columns (optional)."},
            "aggregates": {"type": "array", "items": {"type": "string"}},
        },
        "allOf": [
            {
                "if": {"properties": {"decision": {"const": "approve"}}},
                "then": {
                    "required": ["epsilon_total", "delta_total", "epsilon_per_query", "expires"]
                },
            },
            {
                "if": {"properties": {"decision": {"const": "reject"}}},
                "then": {"required": ["reason"]},
            },
        ],
    },
    "DecisionResponse": {
        "type": "object",
        "required": ["application_id", "status", "approval_id"],
        "properties": {
            "application_id": {"type": "integer"},
            "status": {"enum": ["approved", "rejected"]},
            "approval_id": {"type": ["integer", "null"]},
        },
    },
    "SuspensionRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "approval_id": _ref("ApprovalId"),
            "user": {"type": "string"},
            "reason": {"type": "string", "minLength": 1},
        },
        "oneOf": [{"required": ["approval_id"]}, {"required": ["user"]}],
    },
    "SuspensionCreated": {
        "type": "object",
        "required": ["suspension_id", "target_type"],
        "properties": {"suspension_id": {"type": "integer"}, "target_type": {"type": "string"}},
    },
    "ReasonRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1}},
    },
    "BudgetCapRequest": {
        "type": "object",
        "required": ["epsilon_total", "delta_total", "reason"],
        "properties": {
            "epsilon_total": EPSILON_TOTAL,
            "delta_total": DELTA_TOTAL,
            "reason": {"type": "string", "minLength": 1},
        },
    },
    "BudgetCap": {
        "type": "object",
        "description": "A dataset's collusion cap (all researchers, approvals and versions; "
        "basic composition) and what every release on it has spent. See docs/privacy.md.",
        "required": ["dataset", "epsilon", "delta", "releases", "accounting", "cap"],
        "properties": {
            "dataset": {"type": "string"},
            "epsilon": {"type": "object", "required": ["total", "spent", "remaining"]},
            "delta": {"type": "object", "required": ["total", "spent", "remaining"]},
            "releases": {"type": "integer", "minimum": 0},
            "accounting": {"const": "basic"},
            "cap": {
                "type": "object",
                "required": ["epsilon_total", "delta_total", "source"],
                "properties": {"source": {"enum": ["default", "policy", "owner", "migration"]}},
            },
            "history": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Alert": {
        "type": "object",
        "required": ["alert_id", "kind", "severity", "summary", "details", "created_at"],
        "properties": {
            "alert_id": {"type": "integer"},
            "kind": {"enum": ["refusal_burst", "budget", "differencing", "averaging"]},
            "severity": {"enum": ["info", "warning", "critical"]},
            "researcher": {"type": ["string", "null"]},
            "approval_id": {"type": ["integer", "null"]},
            "summary": {"type": "string"},
            "details": {"type": "object", "description": "Per kind; see docs/workflow.md."},
            "created_at": {"type": "string"},
            "audit_seq": {
                "type": ["integer", "null"],
                "description": "The alert.raised entry in the audit log.",
            },
        },
    },
    "AlertList": {
        "type": "object",
        "required": ["alerts"],
        "properties": {"alerts": {"type": "array", "items": _ref("Alert")}},
    },
}

# (method, Flask rule) → operation. ``body`` names a request schema, ``ok`` the success
# response schema (``OBJECT`` when the shape is documented elsewhere, e.g. docs/workflow.md).
Op = dict[str, Any]
OPERATIONS: dict[tuple[str, str], Op] = {
    ("get", "/api/v1/openapi.json"): {"summary": "This document.", "tag": "meta", "auth": False},
    ("post", "/api/v1/queries"): {
        "summary": "Run a query: a noisy table with accuracy and a signed receipt.",
        "tag": "queries",
        "body": "QueryRequest",
        "ok": "QueryResponse",
        "errors": {
            "409": "budget_exceeded / dataset_budget_exceeded: over the approval's or the dataset's "
                   "budget (not charged).",
            "500": "query_failed: the query failed after its charge (time or memory limit, engine error); "
                   "the charge stands and no cause is given, since it could depend on the data.",
            "503": "engine_busy: every query engine stayed busy; try again (not charged).",
        },
    },
    ("post", "/api/v1/queries/preview"): {
        "summary": "Cost and accuracy of a query, spending nothing.",
        "tag": "queries",
        "body": "PreviewRequest",
        "ok": "PreviewResponse",
    },
    ("post", "/api/v1/queries/dummy"): {
        "summary": "Run a query on dummy data (no budget, no real figures).",
        "tag": "queries",
        "body": "QueryRequest",
    },
    ("get", "/api/v1/approvals/<approval_id>/budget"): {
        "summary": "An approval's privacy budget.",
        "tag": "queries",
        "ok": "Budget",
    },
    ("get", "/api/v1/datasets"): {
        "summary": "Datasets visible to the caller.",
        "tag": "queries",
        "ok": "DatasetList",
    },
    ("get", "/api/v1/datasets/<name>/download"): {
        "summary": "Download an open dataset (csv, parquet).",
        "tag": "catalog",
        "auth": None,
        "binary": True,
        "query": {"format": {"type": "string", "enum": ["csv", "parquet"]}},
    },
    ("get", "/api/v1/datasets/<name>/risk"): {
        "summary": "Re-identification risk report (owner).",
        "tag": "catalog",
    },
    ("get", "/api/v1/datasets/<name>/bounding-report"): {
        "summary": "Bounding report: what candidate L0/L∞ and clamp ranges would cut, suggested bounds "
                   "(owner, regulator; exact figures, never researchers).",
        "tag": "catalog",
    },
    ("post", "/api/v1/datasets/<name>/risk/ack"): {
        "summary": "Acknowledge a risk report (owner): publishes, or submits for the regulator's "
                   "co-signature when the version needs review (202).",
        "tag": "catalog",
        "body": "object?",
    },
    ("get", "/api/v1/datasets/<name>/budget-cap"): {
        "summary": "A dataset's collusion cap, what is spent on it and its history.",
        "tag": "catalog",
        "auth": None,
        "ok": "BudgetCap",
    },
    ("put", "/api/v1/datasets/<name>/budget-cap"): {
        "summary": "Set a dataset's collusion cap (its owner; audit-logged).",
        "tag": "catalog",
        "body": "BudgetCapRequest",
        "ok": "BudgetCap",
    },
    ("post", "/api/v1/datasets/<name>/tier"): {
        "summary": "Change a dataset's tier: lowering is immediate (owner, regulator); raising is "
                   "submitted for the regulator's co-signature with a fresh risk scan (owner, 202) or "
                   "proposed (regulator, 202) (第十、十二条).",
        "tag": "catalog",
        "body": "object",
    },
    ("post", "/api/v1/terminations"): {
        "summary": "Terminate an approval or a researcher: final, unlike a suspension (owner, regulator; 第二十六条).",
        "tag": "workflow", "body": "object", "status": "201",
    },
    ("get", "/api/v1/terminations"): {"summary": "Terminations visible to the caller.", "tag": "workflow"},
    ("post", "/api/v1/terminations/<termination_id>/reverse"): {
        "summary": "Reverse a termination on an objection against it (regulator).", "tag": "workflow", "body": "object",
    },
    ("post", "/api/v1/rectifications"): {
        "summary": "Order an owner to rectify by a date (regulator; 第二十五条).", "tag": "workflow", "body": "object",
        "status": "201",
    },
    ("get", "/api/v1/rectifications"): {"summary": "Rectification orders (owner: own; regulator: all).",
                                        "tag": "workflow"},
    ("get", "/api/v1/rectifications/<order_id>"): {"summary": "One rectification order.", "tag": "workflow"},
    ("post", "/api/v1/rectifications/<order_id>/response"): {
        "summary": "Report what was rectified (the owner).", "tag": "workflow", "body": "object",
    },
    ("post", "/api/v1/rectifications/<order_id>/close"): {
        "summary": "Sign off (close) or return a rectification order (regulator).", "tag": "workflow", "body": "object",
    },
    ("post", "/api/v1/organisations"): {"summary": "Create an organisation (admin; 第五、二十八条).",
                                        "tag": "workflow", "body": "object", "status": "201"},
    ("get", "/api/v1/organisations"): {"summary": "Organisations and their members.", "tag": "workflow"},
    ("put", "/api/v1/users/<username>/organisation"): {
        "summary": "Place a user in an organisation; a regulator's jurisdiction (admin).", "tag": "workflow",
        "body": "object",
    },
    ("post", "/api/v1/public-objections"): {
        "summary": "Object or suggest without login, with evidence; answers a tracking code (第十七条).",
        "tag": "workflow", "auth": None, "body": "object", "status": "201",
    },
    ("get", "/api/v1/public-objections/<code>"): {"summary": "Follow a public objection by its tracking code.",
                                                  "tag": "workflow", "auth": None},
    ("get", "/api/v1/public-objections"): {"summary": "Objections from the public (owner: own datasets'; regulator).",
                                           "tag": "workflow"},
    ("post", "/api/v1/public-objections/<int:objection_id>/answer"): {
        "summary": "Answer an objection from the public (owner of the dataset, regulator).", "tag": "workflow",
        "body": "object",
    },
    ("post", "/api/v1/queries/dummy-public"): {
        "summary": "A free dummy run before any approval, on the public schema's synthetic stand-in.",
        "tag": "queries", "body": "object"},
    ("get", "/api/v1/tokens"): {"summary": "Your API tokens: name, created, last used, revoked (never the values).",
                                "tag": "workflow"},
    ("post", "/api/v1/tokens"): {"summary": "Create a named API token (shown once).", "tag": "workflow",
                                 "body": "object", "status": "201"},
    ("post", "/api/v1/tokens/<token_id>/revoke"): {"summary": "Revoke one of your API tokens.", "tag": "workflow"},
    ("post", "/api/v1/approvals/<approval_id>/requests"): {
        "summary": "Ask for more budget or an extension: a new application to the same owner(s).", "tag": "workflow",
        "body": "object", "status": "201",
    },
    ("get", "/api/v1/opening-plans"): {"summary": "Annual opening plans (第十三条), public.", "tag": "catalog",
                                       "auth": None},
    ("post", "/api/v1/opening-plans"): {"summary": "Publish an annual opening plan for public comment (owner).",
                                        "tag": "catalog", "body": "object", "status": "201"},
    ("post", "/api/v1/opening-plans/<plan_id>/comments"): {
        "summary": "Comment on an opening plan while its consultation is open (no login).", "tag": "catalog",
        "auth": None, "body": "object", "status": "201"},
    ("get", "/api/v1/opening-plans/<plan_id>/comments"): {"summary": "The comments on a plan (its owner, regulator).",
                                                          "tag": "catalog"},
    ("put", "/api/v1/datasets/<name>/legal-basis"): {
        "summary": "Record a dataset's legal basis or consent reference for personal information (owner; 第二十条).",
        "tag": "catalog", "body": "object"},
    ("get", "/api/v1/overdue"): {"summary": "Overdue applications, objections and rectification orders.",
                                 "tag": "workflow"},
    ("get", "/api/v1/settings"): {"summary": "Operator settings (admin, regulator).", "tag": "workflow"},
    ("put", "/api/v1/settings/<name>"): {"summary": "Change an operator setting (admin; logged).", "tag": "workflow",
                                         "body": "object"},
    ("post", "/api/v1/alerts/<alert_id>/handle"): {
        "summary": "Acknowledge, resolve or act on (suspend) an alert.", "tag": "workflow", "body": "object",
    },
    ("get", "/api/v1/reviews"): {
        "summary": "Publication and tier reviews (owner: own datasets'; regulator: all).",
        "tag": "catalog",
    },
    ("get", "/api/v1/reviews/<review_id>"): {
        "summary": "One review: scan, de-identification recipe, signatures.",
        "tag": "catalog",
    },
    ("post", "/api/v1/reviews/<review_id>/decision"): {
        "summary": "Co-sign (approve) or reject a submitted review (regulator).",
        "tag": "catalog",
        "body": "object",
    },
    ("post", "/api/v1/reviews/<review_id>/answer"): {
        "summary": "Answer a regulator's tier proposal: accept and submit, or decline with reasons (owner).",
        "tag": "catalog",
        "body": "object",
    },
    ("post", "/api/v1/reviews/<review_id>/expert-review"): {
        "summary": "Record the expert review of a declined proposal and the outcome it recommends (regulator, 第十条).",
        "tag": "catalog",
        "body": "object",
    },
    ("put", "/api/v1/datasets/<name>/classification"): {
        "summary": "Record a dataset's category, grade and basis (owner; regulator in its jurisdiction; 第六条).",
        "tag": "catalog",
        "body": "object",
    },
    ("get", "/api/v1/attachments/<attachment_id>"): {
        "summary": "Download an application's attachment or an objection's evidence (the parties only).",
        "tag": "workflow",
        "binary": True,
    },
    ("post", "/api/v1/reviews/<review_id>/city-decision"): {
        "summary": "Settle a declined proposal: change or no_change, with the reason (city regulator only, 第十条).",
        "tag": "catalog",
        "body": "object",
    },
    ("post", "/api/v1/applications"): {
        "summary": "Apply for access (researcher).",
        "tag": "workflow",
        "body": "ApplicationRequest",
        "ok": "ApplicationCreated",
        "status": "201",
    },
    ("get", "/api/v1/applications"): {
        "summary": "Applications visible to the caller.",
        "tag": "workflow",
    },
    ("get", "/api/v1/applications/<int:application_id>"): {
        "summary": "One application.",
        "tag": "workflow",
    },
    ("post", "/api/v1/applications/<int:application_id>/decision"): {
        "summary": "Approve or reject an application (owner).",
        "tag": "workflow",
        "body": "DecisionRequest",
        "ok": "DecisionResponse",
    },
    ("get", "/api/v1/approvals"): {
        "summary": "Approvals visible to the caller.",
        "tag": "workflow",
    },
    ("get", "/api/v1/approvals/<int:approval_id>"): {"summary": "One approval.", "tag": "workflow"},
    ("get", "/api/v1/commitment"): {
        "summary": "The security commitment text and its hash.",
        "tag": "workflow",
        "auth": None,
    },
    ("post", "/api/v1/suspensions"): {
        "summary": "Suspend an approval or a user (owner, regulator).",
        "tag": "workflow",
        "body": "SuspensionRequest",
        "ok": "SuspensionCreated",
        "status": "201",
    },
    ("get", "/api/v1/suspensions"): {
        "summary": "Suspensions visible to the caller.",
        "tag": "workflow",
    },
    ("post", "/api/v1/suspensions/<int:suspension_id>/lift"): {
        "summary": "Lift a suspension.",
        "tag": "workflow",
        "body": "ReasonRequest",
    },
    ("get", "/api/v1/alerts"): {
        "summary": "Alerts on anomalies, newest first (owner: own approvals; regulator: all).",
        "tag": "workflow",
        "ok": "AlertList",
        "query": {
            "kind": {"enum": ["refusal_burst", "budget", "differencing", "averaging"]},
            "approval_id": {"type": "integer", "minimum": 0},
        },
    },
    ("post", "/api/v1/objections"): {
        "summary": "File an objection.",
        "tag": "workflow",
        "body": "object",
        "status": "201",
    },
    ("get", "/api/v1/objections"): {
        "summary": "Objections visible to the caller.",
        "tag": "workflow",
    },
    ("get", "/api/v1/objections/<int:objection_id>"): {
        "summary": "One objection.",
        "tag": "workflow",
    },
    ("post", "/api/v1/objections/<int:objection_id>/answer"): {
        "summary": "Answer an objection.",
        "tag": "workflow",
        "body": "object",
    },
    ("get", "/api/v1/catalog"): {"summary": "The public catalog.", "tag": "catalog", "auth": None},
    ("get", "/api/v1/catalog/<name>"): {
        "summary": "One catalog entry.",
        "tag": "catalog",
        "auth": None,
    },
    ("get", "/api/v1/transparency"): {
        "summary": "Public transparency figures.",
        "tag": "catalog",
        "auth": None,
    },
    ("post", "/api/v1/users"): {
        "summary": "Create an account (admin roles).",
        "tag": "accounts",
        "body": "object",
        "status": "201",
    },
    ("post", "/api/v1/users/<username>/tokens/rotate"): {
        "summary": "Rotate a user's API token.",
        "tag": "accounts",
    },
    ("get", "/api/v1/audit/entries"): {
        "summary": "Audit log entries (regulator).",
        "tag": "audit",
        "query": {
            "start": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 0},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "subject": {"type": "string"},
            "since": {"type": "string"},
            "until": {"type": "string"},
        },
    },
    ("get", "/api/v1/audit/checkpoint"): {
        "summary": "The latest signed checkpoint (C2SP signed note).",
        "tag": "audit",
    },
    ("get", "/api/v1/audit/proofs/inclusion"): {
        "summary": "RFC 6962 inclusion proof.",
        "tag": "audit",
        "query": {
            "index": {"type": "integer", "minimum": 0},
            "size": {"type": "integer", "minimum": 0},
        },
        "required_query": ("index", "size"),
    },
    ("get", "/api/v1/audit/proofs/consistency"): {
        "summary": "RFC 6962 consistency proof.",
        "tag": "audit",
        "query": {
            "from": {"type": "integer", "minimum": 0},
            "to": {"type": "integer", "minimum": 0},
        },
        "required_query": ("from", "to"),
    },
}

_RULE_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> str:
    """``/a/<int:x>/b`` → ``/a/{x}/b``."""
    return _RULE_ARG.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    params = []
    for converter, name in _RULE_ARG.findall(rule):
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _operation(method: str, rule: str, op: Op) -> dict[str, Any]:
    status = op.get("status", "200")
    ok_schema = _ref(op["ok"]) if "ok" in op else OBJECT
    if op.get("binary"):
        ok_content = {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
        }
    else:
        ok_content = {"application/json": {"schema": ok_schema}}
    out: dict[str, Any] = {
        "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', openapi_path(rule)).strip('_')}",
        "summary": op["summary"],
        "tags": [op["tag"]],
        "responses": {
            status: {"description": "Success.", "content": ok_content},
            "400": _error_response("Invalid request or refused SQL (with position)."),
            "401": _error_response("Missing or invalid bearer token."),
            "403": _error_response("Not allowed for this role or approval."),
            "404": _error_response("No such resource."),
            "409": _error_response("Conflict (e.g. budget exceeded, already decided)."),
            "413": _error_response("Request body too large."),
            "429": {
                **_error_response("Too many requests (rate limit per token and per address)."),
                "headers": {
                    "Retry-After": {
                        "description": "Seconds to wait before the next request.",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                },
            },
            "default": _error_response("Any other error, same shape."),
        },
    }
    for code, text in op.get("errors", {}).items():
        out["responses"][code] = _error_response(text)
    auth = op.get("auth", True)
    if auth is False:
        out["security"] = []
    elif auth is None:  # optional: anonymous callers see the public part
        out["security"] = [{}, {"bearer": []}]
    params = _path_parameters(rule)
    required = set(op.get("required_query", ()))
    for name, schema in op.get("query", {}).items():
        params.append({"name": name, "in": "query", "required": name in required, "schema": schema})
    if params:
        out["parameters"] = params
    body = op.get("body")
    if body:
        optional = body.endswith("?")
        name = body.rstrip("?")
        schema = OBJECT if name == "object" else _ref(name)
        out["requestBody"] = {
            "required": not optional,
            "content": {"application/json": {"schema": schema}},
        }
    return out


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (pure: the same dict on every call)."""
    paths: dict[str, dict[str, Any]] = {}
    for (method, rule), op in OPERATIONS.items():
        paths.setdefault(openapi_path(rule), {})[method] = _operation(method, rule, op)
    paths["/healthz"] = {
        "get": {
            "operationId": "get_healthz",
            "summary": "Liveness.",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Alive.",
                    "content": {"application/json": {"schema": _ref("Health")}},
                }
            },
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Secure data-access sandbox API",
            "version": API_VERSION,
            "description": "Researchers send SQL; the sandbox returns differentially private aggregates "
            "with accuracy and a signed receipt. Every error is "
            '{"error": {"code", "message", "position"?}}. See docs/api.md.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": t} for t in ("queries", "workflow", "catalog", "audit", "accounts", "meta")
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <token>",
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
def get_openapi():
    return jsonify(document())
