// A tiny built-in bitmap font, so charts and figure labels need no font files or canvas library.
// Each glyph is 5 columns wide; each column is one byte written as two hex digits, bit 0 the top
// row and bit 7 the bottom. Rows 0-6 hold the body (capitals and digits are 7 rows tall) and row
// 7 is only used by descenders (g j p q y , ;), so a line of text is 8 rows plus spacing.

export const GLYPH_COLUMNS = 5;
export const GLYPH_ROWS = 8;
/** Horizontal advance per character in font pixels: glyph plus one blank column. */
export const GLYPH_ADVANCE = GLYPH_COLUMNS + 1;

const GLYPHS: ReadonlyArray<readonly [string, string]> = [
  [' ', '0000000000'], ['!', '00005f0000'], ['"', '0007000700'], ['#', '147f147f14'],
  ['$', '242a7f2a12'], ['%', '2313086462'], ['&', '3649562050'], ["'", '0000070000'],
  ['(', '001c224100'], [')', '0041221c00'], ['*', '2a1c7f1c2a'], ['+', '08083e0808'],
  [',', '0080603000'], ['-', '0808080808'], ['.', '0000606000'], ['/', '2010080402'],
  ['0', '3e5149453e'], ['1', '00427f4000'], ['2', '6251494946'], ['3', '2241494936'],
  ['4', '1814127f10'], ['5', '2745454539'], ['6', '3c4a494930'], ['7', '0171090503'],
  ['8', '3649494936'], ['9', '064949291e'], [':', '0000360000'], [';', '0080760000'],
  ['<', '0814224100'], ['=', '1414141414'], ['>', '0041221408'], ['?', '0201510906'],
  ['@', '3e415d594e'], ['A', '7e1111117e'], ['B', '7f49494936'], ['C', '3e41414122'],
  ['D', '7f4141413e'], ['E', '7f49494941'], ['F', '7f09090901'], ['G', '3e41495132'],
  ['H', '7f0808087f'], ['I', '00417f4100'], ['J', '2040413f01'], ['K', '7f08142241'],
  ['L', '7f40404040'], ['M', '7f020c027f'], ['N', '7f0408107f'], ['O', '3e4141413e'],
  ['P', '7f09090906'], ['Q', '3e4151215e'], ['R', '7f09192946'], ['S', '2649494932'],
  ['T', '01017f0101'], ['U', '3f4040403f'], ['V', '1f2040201f'], ['W', '3f4038403f'],
  ['X', '6314081463'], ['Y', '0708700807'], ['Z', '6151494543'], ['[', '007f414100'],
  ['\\', '0204081020'], [']', '0041417f00'], ['^', '0402010204'], ['_', '4040404040'],
  ['`', '0001020000'], ['a', '2054545478'], ['b', '7f48444438'], ['c', '3844444428'],
  ['d', '384444487f'], ['e', '3854545418'], ['f', '087e090102'], ['g', '18a4a4a47c'],
  ['h', '7f08040478'], ['i', '00447d4000'], ['j', '4080847d00'], ['k', '7f10284400'],
  ['l', '00417f4000'], ['m', '7c04780478'], ['n', '7c08040478'], ['o', '3844444438'],
  ['p', 'fc24242418'], ['q', '18242424fc'], ['r', '7c08040408'], ['s', '4854545424'],
  ['t', '043f444020'], ['u', '3c4040207c'], ['v', '1c2040201c'], ['w', '3c4030403c'],
  ['x', '4428102844'], ['y', '1ca0a0a07c'], ['z', '4464544c44'], ['{', '0008364100'],
  ['|', '00007f0000'], ['}', '0041360800'], ['~', '0201020402'],
];

/** Column bytes per character, decoded once. Unknown characters fall back to '?'. */
const COLUMNS_BY_CHAR = new Map<string, Uint8Array>(
  GLYPHS.map(([char, hex]) => {
    const columns = new Uint8Array(GLYPH_COLUMNS);
    for (let c = 0; c < GLYPH_COLUMNS; c++) columns[c] = parseInt(hex.slice(2 * c, 2 * c + 2), 16);
    return [char, columns];
  }),
);

export function glyphColumns(char: string): Uint8Array {
  const columns = COLUMNS_BY_CHAR.get(char) ?? COLUMNS_BY_CHAR.get('?');
  if (!columns) throw new Error('pictures-font: the fallback glyph is missing');
  return columns;
}

/** Width in font pixels of a single line of text (no trailing blank column). */
export function textWidthInFontPixels(text: string): number {
  return text.length === 0 ? 0 : text.length * GLYPH_ADVANCE - 1;
}
