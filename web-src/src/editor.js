/* The console's SQL editor: CodeMirror 6 over the workbench's <textarea>.
 *
 * Progressive enhancement: the page works without this file (the textarea is a plain,
 * labelled form field). When this bundle loads it mounts an editor in every
 * [data-editor] element, hides the textarea and keeps it in sync, so the form posts
 * exactly what the editor shows. Nothing is fetched: tables, columns and the allowed
 * functions (with one-line descriptions already translated by the server) come from
 * data attributes of the page.
 *
 * Written for the console's CSP (script-src 'self'; style-src 'self'): no eval, no
 * inline handlers; CodeMirror's own styles go through constructable stylesheets
 * (adoptedStyleSheets), which CSP does not govern, and the colours of tokens are CSS
 * classes (tok-*) in sandbox.css.
 */
import { EditorState, StateField, StateEffect, Prec } from "@codemirror/state";
import {
  EditorView, Decoration, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, placeholder,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { bracketMatching, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { sql, SQLDialect } from "@codemirror/lang-sql";
import { classHighlighter } from "@lezer/highlight";

function json(root, name, fallback) {
  try { return JSON.parse(root.getAttribute(name) || "") || fallback; } catch (e) { return fallback; }
}

/* -- the refusal mark: the token at the refusal's line and column, until the text changes -- */
const setRefusal = StateEffect.define();
const refusalField = StateField.define({
  create() { return Decoration.none; },
  update(marks, tr) {
    for (const e of tr.effects) {
      if (e.is(setRefusal)) {
        if (!e.value) { return Decoration.none; }
        const { from, to, message } = e.value;
        const line = tr.state.doc.lineAt(from);
        return Decoration.set([
          Decoration.line({ class: "cm-refusal-line" }).range(line.from),
          Decoration.mark({ class: "cm-refusal", attributes: { title: message, "aria-label": message } }).range(from, to),
        ], true);
      }
    }
    return tr.docChanged ? Decoration.none : marks.map(tr.changes);
  },
  provide: (f) => EditorView.decorations.from(f),
});

/** Offset of a 1-based line and column, clamped to the document. */
function offsetOf(doc, line, column) {
  const l = doc.line(Math.max(1, Math.min(line, doc.lines)));
  return l.from + Math.max(0, Math.min(column - 1, l.length));
}

/** The token starting at (or after) an offset: a word, a quoted string or one character. */
function tokenAt(doc, at) {
  const text = doc.sliceString(at, Math.min(doc.length, at + 200));
  const skip = text.match(/^\s*/)[0].length;
  const rest = text.slice(skip);
  const m = rest.match(/^([\p{L}_][\p{L}\p{N}_]*|'(?:[^']|'')*'?|"(?:[^"]|"")*"?|\d+(?:\.\d+)?|.)/u);
  const from = at + skip;
  if (!m) { return { from: Math.max(0, doc.length - 1), to: doc.length }; }
  return { from, to: from + m[0].length };
}

/* The SQL the guard reads (query_guard: DuckDB dialect, one aggregate SELECT): only these
 * keywords are completed, so completions are not buried under PostgreSQL's hundreds. */
const DIALECT = SQLDialect.define({
  keywords: "select from where group by having order limit offset as and or not in is null like ilike between " +
    "case when then else end join inner left right full outer on using distinct all with true false cast " +
    "try_cast interval exists asc desc nulls first last within",
  types: "integer int bigint smallint tinyint double float real decimal numeric varchar text char date boolean",
  builtin: "",
});

/** Functions (with their one-line description) and the approval's columns, anywhere a
 * word is typed; after "table." the SQL language's own schema completion answers. */
function wordSource(functions, columns) {
  const options = functions.map((f) => ({
    label: f.name, type: "function", detail: f.signature, info: f.description,
    apply: f.name + "(", boost: f.aggregate ? 2 : 0,
  })).concat(columns);
  return (context) => {
    const word = context.matchBefore(/\w+/);
    if (!word || (word.from === word.to && !context.explicit)) { return null; }
    if (context.state.doc.sliceString(word.from - 1, word.from) === ".") { return null; }
    return { from: word.from, options, validFor: /^\w*$/ };
  };
}

function mount(root) {
  const textarea = root.querySelector("textarea");
  if (!textarea || root.editorView) { return; }
  const form = textarea.form;
  const schema = json(root, "data-schema", {});
  const functions = json(root, "data-functions", []);
  const labelId = root.getAttribute("data-label") || "";
  const describedBy = textarea.getAttribute("aria-describedby") || "";

  // Columns with their type and bounds as the completion's detail; tables with their title.
  const sqlSchema = {};
  const tables = [];
  const columns = [];
  const seen = {};
  for (const [table, info] of Object.entries(schema)) {
    sqlSchema[table] = (info.columns || []).map((c) => ({ label: c.name, type: "property", detail: c.detail || "" }));
    tables.push({ label: table, type: "type", detail: info.title || "", boost: 3 });
    for (const c of info.columns || []) {
      if (seen[c.name]) { continue; }
      seen[c.name] = true;
      columns.push({ label: c.name, type: "property", detail: c.detail || "", info: table, boost: 4 });
    }
  }

  function run() {
    if (!form) { return false; }
    textarea.value = view.state.doc.toString();
    const button = form.querySelector("#run");
    if (form.requestSubmit) { form.requestSubmit(button || undefined); } else { form.submit(); }
    return true;
  }

  const view = new EditorView({
    parent: root,
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), history(), drawSelection(),
        indentOnInput(), bracketMatching(), closeBrackets(), highlightActiveLine(),
        highlightSelectionMatches(), syntaxHighlighting(classHighlighter),
        sql({ dialect: DIALECT, schema: sqlSchema, tables, upperCaseKeywords: true }),
        DIALECT.language.data.of({ autocomplete: wordSource(functions, columns) }),
        autocompletion({ icons: false, activateOnTyping: true }),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run, preventDefault: true }])),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...completionKeymap]),
        refusalField,
        placeholder(root.getAttribute("data-placeholder") || ""),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({
          "aria-labelledby": labelId, "aria-describedby": describedBy, "aria-multiline": "true",
          spellcheck: "false", autocapitalize: "off", autocorrect: "off", translate: "no",
        }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) {
            textarea.value = u.state.doc.toString();
            view.contentDOM.removeAttribute("aria-invalid");
          }
        }),
      ],
    }),
  });
  textarea.hidden = true;
  root.classList.add("is-enhanced");
  root.editorView = view;
  if (form) { form.addEventListener("submit", () => { textarea.value = view.state.doc.toString(); }); }
  const label = labelId && document.getElementById(labelId);
  if (label) { label.addEventListener("click", (ev) => { ev.preventDefault(); view.focus(); }); }

  // The refusal, marked at its line and column, with the cursor placed on it.
  const line = parseInt(root.getAttribute("data-error-line") || "", 10);
  if (!isNaN(line)) {
    const column = parseInt(root.getAttribute("data-error-column") || "1", 10);
    const { from, to } = tokenAt(view.state.doc, offsetOf(view.state.doc, line, column));
    view.dispatch({
      effects: [setRefusal.of({ from, to, message: root.getAttribute("data-error-message") || "" }),
                EditorView.scrollIntoView(from, { y: "center" })],
      selection: { anchor: from },
    });
    view.contentDOM.setAttribute("aria-invalid", "true");
    view.focus();
  }

  // Schema buttons insert a name at the cursor.
  root.editorInsert = (text) => {
    const { from } = view.state.selection.main;
    const before = view.state.doc.sliceString(Math.max(0, from - 1), from);
    const pad = before && !/[\s(,.]/.test(before) ? " " : "";
    view.dispatch(view.state.replaceSelection(pad + text));
    view.focus();
  };
}

function start() { document.querySelectorAll("[data-editor]").forEach(mount); }
if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
window.SandboxEditor = { mount };
