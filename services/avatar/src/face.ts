/**
 * A face drawn as SVG from a seed (the SHA-256 of a username, or random bytes): each
 * feature — background, skin, hair and its colour, eyes, brows, mouth, and for some
 * glasses, a beard or cheeks — is chosen by one byte of the seed, so a username always
 * gives the same face and two usernames almost never the same one (about 2 × 10^7
 * combinations). Nothing of the username itself is in the SVG, so what a caller sends
 * never reaches the SVG renderer.
 */

export type Gender = 'male' | 'female';

const BACKGROUNDS = ['#f4d35e', '#a0c4ff', '#bdb2ff', '#ffc6ff', '#caffbf', '#9bf6ff', '#ffd6a5', '#fdffb6', '#e2ece9', '#ffadad'];
const SKINS = ['#ffdbac', '#f1c27d', '#e0ac69', '#c68642', '#8d5524', '#5c3a21'];
const HAIR_COLOURS = ['#090806', '#2c222b', '#71635a', '#b7a69e', '#a56b46', '#b55239', '#debc99', '#4e3b31'];
const EYE_COLOURS = ['#3b2f2f', '#1c7c54', '#2e5eaa', '#6b4f3a', '#4a4a4a'];

/** The shapes of each hair style, drawn behind (back) and over (front) the head. */
const HAIR: Record<Gender, { back: string; front: string }[]> = {
  male: [
    { back: '', front: 'M68 112 Q70 52 128 50 Q186 52 188 112 Q176 80 128 78 Q80 80 68 112Z' },
    { back: '', front: 'M66 118 Q60 44 128 44 Q196 44 190 118 L178 96 Q150 70 120 86 Q92 72 78 96Z' },
    { back: '', front: 'M70 104 Q84 60 128 58 Q172 60 186 104 Q128 70 70 104Z' },
    { back: 'M62 120 Q56 40 128 40 Q200 40 194 120 Z', front: 'M64 110 Q72 48 128 48 Q184 48 192 110 Q160 74 128 84 Q96 74 64 110Z' },
  ],
  female: [
    { back: 'M56 210 Q44 60 128 46 Q212 60 200 210 Z', front: 'M66 120 Q66 50 128 50 Q190 50 190 120 Q170 76 128 80 Q86 76 66 120Z' },
    { back: 'M60 170 Q48 56 128 46 Q208 56 196 170 Q180 150 184 120 L72 120 Q76 150 60 170Z', front: 'M66 116 Q70 50 128 50 Q186 50 190 116 Q150 66 100 92 Q80 96 66 116Z' },
    { back: 'M128 30 m-26 0 a26 22 0 1 0 52 0 a26 22 0 1 0 -52 0 M64 130 Q56 50 128 46 Q200 50 192 130Z', front: 'M68 112 Q72 52 128 52 Q184 52 188 112 Q128 68 68 112Z' },
    { back: 'M58 230 Q36 140 60 90 Q80 44 128 44 Q176 44 196 90 Q220 140 198 230 Z', front: 'M66 124 Q64 52 128 50 Q192 52 190 124 Q180 90 150 78 Q128 96 92 84 Q72 96 66 124Z' },
  ],
};

const MOUTHS = [
  (c: string) => `<path d="M108 166 Q128 184 148 166" stroke="${c}" stroke-width="5" fill="none" stroke-linecap="round"/>`,
  (c: string) => `<path d="M106 164 Q128 190 150 164 Z" fill="${c}"/>`,
  (c: string) => `<path d="M112 170 L144 170" stroke="${c}" stroke-width="5" stroke-linecap="round"/>`,
  (c: string) => `<ellipse cx="128" cy="170" rx="10" ry="8" fill="${c}"/>`,
];

const EYES = [
  (c: string) => `<circle cx="104" cy="130" r="7" fill="${c}"/><circle cx="152" cy="130" r="7" fill="${c}"/>`,
  (c: string) => `<ellipse cx="104" cy="130" rx="10" ry="7" fill="#fff"/><ellipse cx="152" cy="130" rx="10" ry="7" fill="#fff"/><circle cx="104" cy="130" r="5" fill="${c}"/><circle cx="152" cy="130" r="5" fill="${c}"/>`,
  (c: string) => `<path d="M94 132 Q104 122 114 132 M142 132 Q152 122 162 132" stroke="${c}" stroke-width="5" fill="none" stroke-linecap="round"/>`,
];

/** A byte of the seed as an index into `list`. */
function pick<T>(seed: Uint8Array, i: number, list: readonly T[]): T {
  return list[(seed[i % seed.length] as number) % list.length] as T;
}

/** The SVG of the face of `seed` (32 bytes or more), `size` pixels square. */
export function faceSvg(seed: Uint8Array, gender: Gender, size: number): string {
  const skin = pick(seed, 1, SKINS);
  const hairColour = pick(seed, 2, HAIR_COLOURS);
  const hair = pick(seed, 3, HAIR[gender]);
  const line = '#3a2a20';
  const glasses = (seed[7] as number) % 4 === 0;
  const beard = gender === 'male' && (seed[8] as number) % 4 === 0;
  const cheeks = (seed[9] as number) % 3 === 0;
  const parts = [
    `<rect width="256" height="256" fill="${pick(seed, 0, BACKGROUNDS)}"/>`,
    hair.back && `<path d="${hair.back}" fill="${hairColour}"/>`,
    `<path d="M96 190 L96 230 Q128 246 160 230 L160 190Z" fill="${skin}"/>`,
    `<path d="M40 256 Q48 214 96 206 Q128 226 160 206 Q208 214 216 256Z" fill="${pick(seed, 10, BACKGROUNDS.slice().reverse())}" stroke="${line}" stroke-opacity="0.2"/>`,
    `<ellipse cx="64" cy="136" rx="10" ry="16" fill="${skin}"/><ellipse cx="192" cy="136" rx="10" ry="16" fill="${skin}"/>`,
    `<ellipse cx="128" cy="128" rx="64" ry="76" fill="${skin}"/>`,
    beard ? `<path d="M66 140 Q70 206 128 210 Q186 206 190 140 Q176 180 128 182 Q80 180 66 140Z" fill="${hairColour}"/>` : '',
    `<path d="${hair.front}" fill="${hairColour}"/>`,
    `<path d="M92 114 L116 112 M140 112 L164 114" stroke="${hairColour}" stroke-width="5" stroke-linecap="round"/>`,
    pick(seed, 4, EYES)(pick(seed, 5, EYE_COLOURS)),
    glasses ? `<g fill="none" stroke="${line}" stroke-width="4"><circle cx="104" cy="130" r="17"/><circle cx="152" cy="130" r="17"/><path d="M121 130 L135 130"/></g>` : '',
    `<path d="M128 134 Q122 150 128 154" stroke="${line}" stroke-opacity="0.45" stroke-width="3" fill="none" stroke-linecap="round"/>`,
    cheeks ? `<circle cx="90" cy="158" r="9" fill="#ff7b7b" fill-opacity="0.35"/><circle cx="166" cy="158" r="9" fill="#ff7b7b" fill-opacity="0.35"/>` : '',
    pick(seed, 6, MOUTHS)(gender === 'female' ? '#b5435a' : '#8a3b3b'),
  ];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 256 256">${parts.join('')}</svg>`;
}
