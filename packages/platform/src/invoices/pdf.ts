import { deflateSync } from 'node:zlib';

/**
 * A small PDF writer, enough for an invoice: A4 pages of text in the standard Helvetica
 * fonts (no font is embedded: every PDF reader has them) and straight lines. Text is
 * written in WinAnsiEncoding: what it cannot show becomes `?`, control characters are
 * dropped and `\ ( )` escaped, so no text can end its string and write PDF operators. The
 * output is PDF 1.4 with a cross-reference table of exact byte offsets; the same input
 * gives the same bytes (the creation date is the caller's).
 */

export const A4 = { width: 595.28, height: 841.89 } as const;

// Helvetica and Helvetica-Bold advance widths (1/1000 em) of the characters 32..126 (Adobe's AFM files)
const HELVETICA = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260,
  334, 584,
];
const HELVETICA_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833,
  722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280,
  389, 584,
];

// WinAnsiEncoding's 0x80..0x9f, by Unicode code point
const WIN_ANSI_HIGH = new Map<number, number>([
  [0x20ac, 0x80], [0x201a, 0x82], [0x0192, 0x83], [0x201e, 0x84], [0x2026, 0x85], [0x2020, 0x86], [0x2021, 0x87], [0x02c6, 0x88], [0x2030, 0x89], [0x0160, 0x8a], [0x2039, 0x8b], [0x0152, 0x8c], [0x017d, 0x8e],
  [0x2018, 0x91], [0x2019, 0x92], [0x201c, 0x93], [0x201d, 0x94], [0x2022, 0x95], [0x2013, 0x96], [0x2014, 0x97], [0x02dc, 0x98], [0x2122, 0x99], [0x0161, 0x9a], [0x203a, 0x9b], [0x0153, 0x9c], [0x017e, 0x9e], [0x0178, 0x9f],
]);

/** A string as WinAnsi bytes (one latin1 character each): unknown characters `?`, control and format characters (bidi overrides) dropped. */
export function winAnsi(s: string): string {
  let out = '';
  for (const ch of s.replace(/[\p{Cc}\p{Cf}]/gu, '')) {
    const c = ch.codePointAt(0) as number;
    if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c >= 0xa0 && c <= 0xff) out += ch;
    else if (WIN_ANSI_HIGH.has(c)) out += String.fromCharCode(WIN_ANSI_HIGH.get(c) as number);
    else out += '?';
  }
  return out;
}

/** A PDF literal string of WinAnsi text: `(…)` with `\`, `(` and `)` escaped. */
function literal(text: string): string {
  return `(${winAnsi(text).replace(/[\\()]/g, (c) => `\\${c}`)})`;
}

export interface TextOptions {
  size?: number;
  bold?: boolean;
  /** x is the left edge (default), or the right edge */
  align?: 'left' | 'right';
}

/** The width of a text in points. */
export function textWidth(text: string, size: number, bold = false): number {
  const table = bold ? HELVETICA_BOLD : HELVETICA;
  let units = 0;
  for (const ch of winAnsi(text)) {
    const c = ch.charCodeAt(0);
    units += c >= 32 && c <= 126 ? (table[c - 32] as number) : 556;
  }
  return (units * size) / 1000;
}

/** The text cut (with "…") to fit `width` points. */
export function fit(text: string, width: number, size: number, bold = false): string {
  if (textWidth(text, size, bold) <= width) return text;
  let cut = [...text];
  while (cut.length && textWidth(`${cut.join('')}…`, size, bold) > width) cut = cut.slice(0, -1);
  return `${cut.join('')}…`;
}

const num = (n: number) => (Math.round(n * 100) / 100).toString();

export class PdfWriter {
  private readonly pages: string[][] = [];

  constructor(private readonly info: { title: string; created: number }) {
    this.addPage();
  }

  /** Starts a new page: what follows is drawn on it. */
  addPage(): void {
    this.pages.push([]);
  }

  private get ops(): string[] {
    return this.pages[this.pages.length - 1] as string[];
  }

  /** Text with its baseline at y (points from the bottom of the page). */
  text(x: number, y: number, text: string, o: TextOptions = {}): void {
    const size = o.size ?? 10;
    const left = o.align === 'right' ? x - textWidth(text, size, o.bold) : x;
    this.ops.push(`BT /${o.bold ? 'F2' : 'F1'} ${num(size)} Tf ${num(left)} ${num(y)} Td ${literal(text)} Tj ET`);
  }

  line(x1: number, y1: number, x2: number, y2: number, width = 0.5): void {
    this.ops.push(`${num(width)} w ${num(x1)} ${num(y1)} m ${num(x2)} ${num(y2)} l S`);
  }

  /** The document's bytes. */
  bytes(): Buffer {
    const objects: (string | Buffer)[] = [];
    const add = (o: string | Buffer) => objects.push(o) - 1 + 1;
    const catalog = add('');
    const pagesId = add('');
    const regular = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
    const bold = add('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>');
    const info = add(`<< /Title ${literal(this.info.title)} /Producer (Micro) /CreationDate (D:${new Date(this.info.created).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z) >>`);
    const kids: number[] = [];
    for (const ops of this.pages) {
      const stream = deflateSync(Buffer.from(ops.join('\n'), 'latin1'));
      const contents = add(Buffer.concat([Buffer.from(`<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`, 'latin1'), stream, Buffer.from('\nendstream', 'latin1')]));
      kids.push(
        add(`<< /Type /Page /Parent ${pagesId} 0 R /MediaBox [0 0 ${A4.width} ${A4.height}] /Resources << /Font << /F1 ${regular} 0 R /F2 ${bold} 0 R >> >> /Contents ${contents} 0 R >>`),
      );
    }
    objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesId} 0 R >>`;
    objects[pagesId - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(' ')}] /Count ${kids.length} >>`;
    const chunks: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
    let offset = chunks[0]?.length ?? 0;
    const offsets: number[] = [];
    objects.forEach((o, i) => {
      offsets.push(offset);
      const chunk = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`, 'latin1'), typeof o === 'string' ? Buffer.from(o, 'latin1') : o, Buffer.from('\nendobj\n', 'latin1')]);
      chunks.push(chunk);
      offset += chunk.length;
    });
    const xref = [`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`, ...offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`)].join('');
    chunks.push(Buffer.from(`${xref}trailer\n<< /Size ${objects.length + 1} /Root ${catalog} 0 R /Info ${info} 0 R >>\nstartxref\n${offset}\n%%EOF\n`, 'latin1'));
    return Buffer.concat(chunks);
  }
}
