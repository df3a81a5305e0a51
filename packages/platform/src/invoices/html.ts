import { viewOf, type InvoiceView } from './view.js';
import type { Invoice } from './invoice.js';

/**
 * The printable HTML of an invoice: one self-contained page (its CSS inline, print rules
 * for A4), every text from the invoice escaped, and a Content-Security-Policy that lets
 * nothing run or load, should a name ever get past the escaping.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

const CSS = `
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2330;background:#eef0f4}
.invoice{max-width:820px;margin:24px auto;padding:40px 48px;background:#fff;box-shadow:0 1px 4px rgba(0,0,0,.12)}
header{display:flex;justify-content:space-between;gap:24px;border-bottom:2px solid #1d2330;padding-bottom:16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:22px;margin:0 0 8px;text-align:right;letter-spacing:.04em;text-transform:uppercase}
h3{font-size:12px;margin:24px 0 4px;text-transform:uppercase;letter-spacing:.06em;color:#5b6372}
dl{display:grid;grid-template-columns:auto auto;gap:2px 12px;margin:0}dt{color:#5b6372}dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
p{margin:0}.muted{color:#5b6372}
table{width:100%;border-collapse:collapse;margin-top:24px}th,td{padding:6px 8px;text-align:left;vertical-align:top}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5b6372;border-bottom:1px solid #c9ced8}
tbody td{border-bottom:1px solid #eceef2}tr.section th{padding-top:14px;font-size:13px}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.totals{width:auto;margin-left:auto}table.totals td{border:0;padding:3px 8px}table.totals tr.strong td{font-weight:700;border-top:1px solid #1d2330}
footer{margin-top:32px;font-size:12px;color:#5b6372}footer p{margin:2px 0}
@page{size:A4;margin:16mm}
@media print{body{background:#fff}.invoice{margin:0;padding:0;box-shadow:none;max-width:none}tr,table.totals{break-inside:avoid}}
`;

const lines = (ls: string[]) => ls.map((l) => `<p class="muted">${escapeHtml(l)}</p>`).join('');

function body(v: InvoiceView): string {
  const rows = v.sections
    .map(
      (s) =>
        `<tr class="section"><th colspan="5">${escapeHtml(s.title)}</th></tr>` +
        s.rows
          .map((r) => `<tr><td>${escapeHtml(r.description)}</td><td>${escapeHtml(r.period)}</td><td class="num">${escapeHtml(r.quantity)}</td><td class="num">${escapeHtml(r.unitPrice)}</td><td class="num">${escapeHtml(r.amount)}</td></tr>`)
          .join(''),
    )
    .join('');
  const totals = v.totals.map((t) => `<tr${t.strong ? ' class="strong"' : ''}><td>${escapeHtml(t.label)}</td><td class="num">${escapeHtml(t.amount)}</td></tr>`).join('');
  return `<main class="invoice">
<header><div><h1>${escapeHtml(v.seller.name)}</h1>${lines(v.seller.lines)}</div>
<div><h2>Invoice</h2><dl><dt>Number</dt><dd>${escapeHtml(v.number)}</dd><dt>Issued</dt><dd>${escapeHtml(v.issued)}</dd><dt>Period</dt><dd>${escapeHtml(v.period)}</dd></dl></div></header>
<section><h3>Bill to</h3><p><strong>${escapeHtml(v.buyer.name)}</strong></p>${lines(v.buyer.lines)}</section>
<table class="lines"><thead><tr><th>Description</th><th>Period</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Amount</th></tr></thead>
<tbody>${rows || '<tr><td colspan="5" class="muted">No lines</td></tr>'}</tbody></table>
<table class="totals"><tbody>${totals}</tbody></table>
<footer>${v.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join('')}</footer>
</main>`;
}

export function invoiceHtml(invoice: Invoice): string {
  const v = viewOf(invoice);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(v.title)}</title><style>${CSS}</style></head>
<body>${body(v)}</body></html>
`;
}
