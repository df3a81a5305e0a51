import type { Invoice } from './invoice.js';
import { A4, fit, PdfWriter } from './pdf.js';
import { viewOf } from './view.js';

/**
 * The PDF of an invoice: the same content as its HTML (view.ts) on A4 pages, the table's
 * heading repeated on each page.
 */

const MARGIN = 48;
const RIGHT = A4.width - MARGIN;
// the columns' edges: description (left), period (left), quantity, unit price and amount (right)
const COL = { period: 300, quantity: 420, unit: 490, amount: RIGHT };
const ROW = 15;

export function invoicePdf(invoice: Invoice): Buffer {
  const v = viewOf(invoice);
  const pdf = new PdfWriter({ title: v.title, created: invoice.issuedAt });
  let y = A4.height - MARGIN;
  const room = (need: number) => {
    if (y - need >= MARGIN) return;
    pdf.addPage();
    y = A4.height - MARGIN;
    heading();
  };
  const heading = () => {
    pdf.text(MARGIN, y, 'DESCRIPTION', { size: 8, bold: true });
    pdf.text(COL.period, y, 'PERIOD', { size: 8, bold: true });
    pdf.text(COL.quantity, y, 'QUANTITY', { size: 8, bold: true, align: 'right' });
    pdf.text(COL.unit, y, 'UNIT PRICE', { size: 8, bold: true, align: 'right' });
    pdf.text(COL.amount, y, 'AMOUNT', { size: 8, bold: true, align: 'right' });
    pdf.line(MARGIN, y - 4, RIGHT, y - 4);
    y -= ROW + 2;
  };

  pdf.text(MARGIN, y, fit(v.seller.name, 300, 18, true), { size: 18, bold: true });
  pdf.text(RIGHT, y, 'INVOICE', { size: 18, bold: true, align: 'right' });
  const meta = [`Number ${v.number}`, `Issued ${v.issued}`, `Period ${v.period}`];
  v.seller.lines.slice(0, 6).forEach((l, i) => pdf.text(MARGIN, y - 18 - i * 12, fit(l, 300, 9), { size: 9 }));
  meta.forEach((m, i) => pdf.text(RIGHT, y - 18 - i * 12, m, { size: 9, align: 'right' }));
  y -= 24 + Math.max(v.seller.lines.length, meta.length) * 12;
  pdf.line(MARGIN, y, RIGHT, y, 1.5);
  y -= 22;
  pdf.text(MARGIN, y, 'BILL TO', { size: 8, bold: true });
  y -= 14;
  pdf.text(MARGIN, y, fit(v.buyer.name, RIGHT - MARGIN, 11, true), { size: 11, bold: true });
  for (const l of v.buyer.lines.slice(0, 6)) pdf.text(MARGIN, (y -= 12), fit(l, RIGHT - MARGIN, 9), { size: 9 });
  y -= 28;
  heading();
  if (!v.sections.length) pdf.text(MARGIN, (y -= 0), 'No lines', { size: 9 });
  for (const s of v.sections) {
    room(ROW * 2);
    pdf.text(MARGIN, y, s.title, { size: 10, bold: true });
    y -= ROW;
    for (const r of s.rows) {
      room(ROW);
      pdf.text(MARGIN, y, fit(r.description, COL.period - MARGIN - 8, 9), { size: 9 });
      pdf.text(COL.period, y, r.period, { size: 9 });
      pdf.text(COL.quantity, y, r.quantity, { size: 9, align: 'right' });
      pdf.text(COL.unit, y, r.unitPrice, { size: 9, align: 'right' });
      pdf.text(COL.amount, y, r.amount, { size: 9, align: 'right' });
      y -= ROW;
    }
  }
  room(ROW * (v.totals.length + 1));
  y -= 8;
  for (const t of v.totals) {
    if (t.strong) pdf.line(COL.period, y + ROW - 4, RIGHT, y + ROW - 4);
    pdf.text(COL.period, y, t.label, { size: 10, bold: !!t.strong });
    pdf.text(COL.amount, y, t.amount, { size: 10, bold: !!t.strong, align: 'right' });
    y -= ROW;
  }
  y -= 16;
  for (const n of v.notes) {
    room(12);
    pdf.text(MARGIN, y, fit(n, RIGHT - MARGIN, 8), { size: 8 });
    y -= 12;
  }
  return pdf.bytes();
}
