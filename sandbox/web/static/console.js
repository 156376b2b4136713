/* Console enhancements. Every page works without this file; it adds:
 *  - SQL highlighting in the editor (a <pre> behind a transparent, real <textarea>, so the
 *    field stays a native, labelled, keyboard- and screen-reader-friendly control);
 *  - the refusal's position marked in the editor until the text is edited;
 *  - Ctrl+Enter (⌘+Enter) runs the query; Tab keeps moving focus (no focus trap);
 *  - schema browser buttons that insert a column name at the cursor;
 *  - tabs between result charts.
 * Written for the CSP of the console: no eval, no inline handlers, no inline styles.
 * Token classes match sandbox/web/console_sql.py. */
(function () {
  "use strict";

  var KEYWORDS = ("select from where group by having order limit offset as and or not in is null like between " +
    "case when then else end join inner left right full outer on using distinct all union except intersect asc " +
    "desc with true false cast interval date exists over partition filter").split(" ");
  var KW = {};
  KEYWORDS.forEach(function (k) { KW[k] = true; });
  var TOKEN = /(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([A-Za-z_\u00c0-\uffff][\w\u00c0-\uffff]*)|(<>|<=|>=|!=|\|\||[-+*\/%=<>(),.;])|(\s+)|([\s\S])/g;

  function escapeHtml(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function tokenize(sql) {
    var out = [], m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(sql)) !== null) {
      var kind = m[1] ? "cm" : m[2] ? "str" : m[3] ? "id" : m[4] ? "num" : m[5] ? "word" : m[6] ? "op" : m[7] ? "space" : "other";
      out.push({ kind: kind, start: m.index, end: m.index + m[0].length, text: m[0] });
      if (m[0].length === 0) { TOKEN.lastIndex++; }
    }
    return out;
  }

  function offsetOf(sql, line, column) {
    var lines = sql.split("\n");
    line = Math.max(1, Math.min(line, lines.length));
    var off = 0;
    for (var i = 0; i < line - 1; i++) { off += lines[i].length + 1; }
    return off + Math.max(0, Math.min(column - 1, lines[line - 1].length));
  }

  function errorSpan(tokens, at) {
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i];
      if (t.end <= at || t.kind === "space") { continue; }
      return [t.start, t.end];
    }
    return null;
  }

  function highlight(sql, schema, errorAt) {
    var tokens = tokenize(sql);
    var span = errorAt === null ? null : errorSpan(tokens, errorAt);
    var html = "";
    for (var i = 0; i < tokens.length; i++) {
      var t = tokens[i], cls = null;
      if (t.kind === "word") {
        var low = t.text.toLowerCase();
        var rest = sql.slice(t.end, t.end + 40).replace(/^\s+/, "");
        cls = KW[low] ? "kw" : rest.charAt(0) === "(" ? "fn" : schema.tables[low] ? "tbl" : schema.columns[low] ? "col" : "id";
      } else if (t.kind !== "space" && t.kind !== "other") {
        cls = t.kind;
      }
      var piece = cls ? '<span class="sql-' + cls + '">' + escapeHtml(t.text) + "</span>" : escapeHtml(t.text);
      if (span && t.start === span[0]) { piece = '<mark class="sql-error">' + piece + (t.end >= span[1] ? "</mark>" : ""); }
      else if (span && t.end === span[1] && t.start > span[0]) { piece += "</mark>"; }
      html += piece;
    }
    // A trailing newline needs a character after it, or the <pre> is one line short.
    return html + "\n ";
  }

  function words(attr) {
    var map = {};
    (attr || "").split(/\s+/).forEach(function (w) { if (w) { map[w.toLowerCase()] = true; } });
    return map;
  }

  function enhanceEditor(root) {
    var input = root.querySelector("textarea");
    var code = root.querySelector(".editor-highlight code") || root.querySelector(".editor-highlight");
    var pre = root.querySelector(".editor-highlight");
    var gutter = root.querySelector(".editor-gutter");
    if (!input || !code) { return; }
    var schema = { tables: words(root.getAttribute("data-tables")), columns: words(root.getAttribute("data-columns")) };
    var errLine = parseInt(root.getAttribute("data-error-line") || "", 10);
    var errCol = parseInt(root.getAttribute("data-error-column") || "1", 10);
    var errorAt = isNaN(errLine) ? null : offsetOf(input.value, errLine, errCol);
    var original = input.value;

    function render() {
      if (errorAt !== null && input.value !== original) {
        errorAt = null; // the mark belongs to the refused text only
        input.removeAttribute("aria-invalid");
      }
      code.innerHTML = highlight(input.value, schema, errorAt);
      if (gutter) {
        var n = input.value.split("\n").length, lines = [];
        for (var i = 1; i <= n; i++) { lines.push(i); }
        gutter.textContent = lines.join("\n");
      }
      sync();
    }
    function sync() {
      pre.scrollTop = input.scrollTop;
      pre.scrollLeft = input.scrollLeft;
      if (gutter) { gutter.scrollTop = input.scrollTop; }
    }
    root.classList.add("is-enhanced");
    input.addEventListener("input", render);
    input.addEventListener("scroll", sync);
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        var form = input.form;
        var run = form && form.querySelector("#run");
        if (form && form.requestSubmit) { form.requestSubmit(run || undefined); } else if (form) { form.submit(); }
      }
    });
    if (window.ResizeObserver) { new ResizeObserver(sync).observe(input); }
    render();
    if (errorAt !== null) {
      input.focus();
      input.setSelectionRange(errorAt, errorAt);
      sync();
    }
    root.editorInsert = function (text) {
      var s = input.selectionStart, e = input.selectionEnd, v = input.value;
      var before = v.slice(0, s), after = v.slice(e);
      var pad = before && !/[\s(,.]$/.test(before) ? " " : "";
      input.value = before + pad + text + after;
      var pos = (before + pad + text).length;
      input.focus();
      input.setSelectionRange(pos, pos);
      render();
    };
  }

  function enhanceInserts() {
    var editor = document.querySelector("[data-editor]");
    if (!editor || !editor.editorInsert) { return; }
    document.querySelectorAll(".insert-wrap").forEach(function (w) { w.hidden = false; });
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest ? ev.target.closest("button[data-insert]") : null;
      if (btn) { editor.editorInsert(btn.getAttribute("data-insert")); }
    });
  }

  function enhanceTabs(root) {
    var list = root.querySelector("[role=tablist]");
    if (!list) { return; }
    var tabs = Array.prototype.slice.call(list.querySelectorAll("[role=tab]"));
    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        var panel = document.getElementById(t.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !on; }
      });
      if (focus) { tab.focus(); }
    }
    list.hidden = false;
    tabs.forEach(function (t, i) {
      t.addEventListener("click", function () { select(t, false); });
      t.addEventListener("keydown", function (ev) {
        if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
          ev.preventDefault();
          select(tabs[(i + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length], true);
        }
      });
    });
    select(tabs[0], false);
  }

  function start() {
    document.querySelectorAll("[data-editor]").forEach(enhanceEditor);
    enhanceInserts();
    document.querySelectorAll("[data-chart-tabs]").forEach(enhanceTabs);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
