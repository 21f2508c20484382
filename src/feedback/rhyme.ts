// Rhyme of Chinese characters by their modern reading: the character's pinyin (from the offline dictionary of the npm
// package pinyin-pro, which reads a character in the context of its line, so 长 in 长安 and 长大 differ), its final
// (韵母), and the final's rhyme group in the 14 groups of 中华新韵 (the modern rhyme book of the 中华诗词学会, 2005):
//
//   麻 a ia ua      波 o e uo (io)    皆 ie üe     开 ai uai     微 ei uei     豪 ao iao     尤 ou iou
//   寒 an ian uan üan                  文 en in uen ün             唐 ang iang uang
//   庚 eng ing ueng ong iong           齐 i ü er    支 -i (zhi chi shi ri zi ci si)            姑 u
//
// Why modern readings: they are what pinyin-pro knows, offline, and what a reader of today hears. The Tang poets
// rhymed by the Middle Chinese of the 平水韵 groups, so some of their rhymes no longer rhyme in pinyin; the labeller
// measures this on real poems (see labeller.ts) and its weights allow for it.
// Boundary: characters in, rhyme groups out; no scores.
import { pinyin } from 'pinyin-pro';

export type RhymeGroup = '麻' | '波' | '皆' | '开' | '微' | '豪' | '尤' | '寒' | '文' | '唐' | '庚' | '齐' | '支' | '姑';

const GROUP_OF_FINAL: Record<string, RhymeGroup> = {
  a: '麻', ia: '麻', ua: '麻',
  o: '波', e: '波', uo: '波', io: '波', ê: '波',
  ie: '皆', üe: '皆',
  ai: '开', uai: '开',
  ei: '微', uei: '微',
  ao: '豪', iao: '豪',
  ou: '尤', iou: '尤',
  an: '寒', ian: '寒', uan: '寒', üan: '寒',
  en: '文', in: '文', uen: '文', ün: '文',
  ang: '唐', iang: '唐', uang: '唐',
  eng: '庚', ing: '庚', ueng: '庚', ong: '庚', iong: '庚',
  i: '齐', ü: '齐', er: '齐',
  '-i': '支',
  u: '姑',
};

const INITIALS = ['zh', 'ch', 'sh', 'b', 'p', 'm', 'f', 'd', 't', 'n', 'l', 'g', 'k', 'h', 'j', 'q', 'x', 'r', 'z', 'c', 's'];

// The final of a toneless pinyin syllable, in the full spelling of the rhyme table: "yun" -> "ün", "gui" -> "uei",
// "shi" -> "-i", "wo" -> "uo". null for what is not a syllable.
export function finalOf(syllable: string): string | null {
  let s = syllable.toLowerCase().replace(/v/g, 'ü').replace(/u:/g, 'ü');
  if (!/^[a-zü]+$/.test(s)) return null;
  if (/^(zh|ch|sh|r|z|c|s)i$/.test(s)) return '-i';
  if (s[0] === 'y') {
    // y spells i or ü: yi, ya, ye, yao, you, yan, yin, yang, ying, yong; yu, yue, yuan, yun
    s = s.slice(1);
    if (s.startsWith('u')) return 'ü' + s.slice(1);
    if (s === 'ou') return 'iou';
    return s.startsWith('i') ? s : 'i' + s;
  }
  if (s[0] === 'w') {
    // w spells u: wu, wa, wo, wai, wei, wan, wen, wang, weng
    s = s.slice(1);
    if (s === 'ei') return 'uei';
    if (s === 'en') return 'uen';
    return s.startsWith('u') ? s : 'u' + s;
  }
  const initial = INITIALS.find((i) => s.startsWith(i) && s.length > i.length);
  let f = initial ? s.slice(initial.length) : s;
  if (initial && 'jqx'.includes(initial) && f.startsWith('u')) f = 'ü' + f.slice(1); // ju, que, xuan, jun
  if (f === 'ui') return 'uei';
  if (f === 'iu') return 'iou';
  if (f === 'un') return initial && 'jqx'.includes(initial) ? 'ün' : 'uen';
  return f;
}

export function rhymeGroupOfSyllable(syllable: string): RhymeGroup | null {
  const f = finalOf(syllable);
  return f === null ? null : GROUP_OF_FINAL[f] ?? null;
}

const HAN = /\p{Script=Han}/u;

// The rhyme group of the last Han character of a line, read in the context of the line; null when there is none.
export function lineEndRhyme(line: string): { char: string; syllable: string; group: RhymeGroup | null } | null {
  const han = [...line].filter((c) => HAN.test(c));
  if (han.length === 0) return null;
  const syllables = pinyin(han.join(''), { toneType: 'none', type: 'array' });
  const syllable = syllables[syllables.length - 1] ?? '';
  return { char: han[han.length - 1], syllable, group: rhymeGroupOfSyllable(syllable) };
}
