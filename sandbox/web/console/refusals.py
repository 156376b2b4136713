"""What a refused query or a refused save means, in the reader's language.

The service's own message (English, citing its article) stays available beside it: issue 15,
"refusal details in English".
"""

from __future__ import annotations

from typing import Any, Final

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from sandbox.errors import SandboxError
from sandbox.store import saved_queries
from sandbox.web.console.errors import sentence

#: What each refusal code means, in the reader's language.
REFUSAL_EXPLANATIONS: Final = {
    "out_of_scope": _l("The query uses a dataset or column this approval does not cover (Art. 15). Use only what "
                       "the schema panel lists as usable."),
    "identifier_column": _l("Identifier columns (names, ID numbers, phone numbers) can never be used, not even in "
                            "a filter (Art. 20)."),
    "row_level_output": _l("Only aggregates are released: every output column must be an aggregate (COUNT, SUM, "
                           "AVG …) or a group key."),
    "unbounded": _l("The sandbox must know the range of every value it adds up or averages: use a column with "
                    "declared bounds, or clamp it with LEAST and GREATEST."),
    "too_complex": _l("The query has too many parts for one release; split or simplify it."),
    "sql_syntax": _l("The SQL could not be read; the mark shows where reading stopped."),
    "not_allowed": _l("This SQL construct is outside what the guard allows: one SELECT with aggregates and the "
                      "functions the editor offers."),
    "budget_exceeded": _l("This approval has too little privacy budget left for this ε: lower ε (wider intervals) "
                          "or ask the data owner for more."),
    "suspended": _l("Access under this approval is suspended (Art. 22); the Suspensions page says why."),
    "expired": _l("This approval has expired; apply for a new one."),
    "bad_epsilon": _l("ε must be a number above zero and at most this approval's limit per query."),
    "missing_sql": _l("Write a query in the editor first."),
}


def refusal(err: SandboxError) -> dict[str, Any]:
    """The refusal as the workbench shows it: code, the service's message, where in the SQL, what it means."""
    explanation = REFUSAL_EXPLANATIONS.get(err.code)
    return {"code": err.code, "message": err.message, "position": getattr(err, "position", None),
            "explanation": str(explanation) if explanation is not None else
            _("The service's message below names the rule that was broken.")}


def save_error(err: SandboxError) -> str:
    """The rule a refused save broke, in the reader's language."""
    messages = {
        "saved_query_name_required": _("Give the query a name to save it."),
        "saved_query_name_too_long": _("The name is longer than %(n)s characters.", n=saved_queries.MAX_NAME),
        "saved_query_sql_required": _("There is no SQL to save."),
        "saved_query_too_long": _("The SQL is longer than %(n)s characters.", n=f"{saved_queries.MAX_SQL:,}"),
        "saved_query_limit": _("You have %(n)s saved queries, the most allowed; delete one first.",
                               n=saved_queries.MAX_PER_USER),
    }
    return messages.get(err.code) or sentence(err)

