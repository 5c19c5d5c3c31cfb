// exp(x) rounded correctly (to nearest) from a double-double evaluation (~104 bits).
// V8's Math.exp (fdlibm) is not always correctly rounded and differs from the C library's
// exp that the Python scorer's Numba kernels call (glibc: < 0.502 ulp) in the last bit of
// about one result in a few hundred; a correctly rounded exp agrees with glibc's wherever
// glibc's is correctly rounded (all but a tiny fraction of arguments).

const LN2_HI = 0.6931471805599453
const LN2_LO = 2.3190468138462996e-17
const LN2_LO2 = 5.707708438416212e-34
const SPLIT = 134217729 // 2^27 + 1 (Veltkamp)

// exact a*b = p + e (no FMA in JS: Dekker's product)
function twoProd (a, b) {
  const p = a * b
  let t = SPLIT * a; const ah = t - (t - a); const al = a - ah
  t = SPLIT * b; const bh = t - (t - b); const bl = b - bh
  return [p, ((ah * bh - p) + ah * bl + al * bh) + al * bl]
}

export function expCR (x) {
  if (x !== x) return x
  if (x > 709.782712893384) return Infinity
  if (x < -745.1332191019412) return 0
  if (x === 0) return 1
  if (Math.abs(x) < 1e-17) return 1 + x // rounds exactly as the series does
  const k = Math.round(x / LN2_HI)
  // r = x - k ln2 in double-double: k * LN2_HI exactly, then the low parts
  const [p, pe] = twoProd(k, LN2_HI)
  let rh = x - p // exact (Sterbenz) when k != 0: x and p are close
  let rl = -pe
  let s = rh + rl; rl = rl - (s - rh); rh = s
  const q = -k * LN2_LO; const q2 = -k * LN2_LO2
  s = rh + q; const e1 = (rh - s) + q + rl + q2 // low-order terms
  rh = s + e1; rl = e1 - (rh - s)
  // Horner: e = 1 + r(1 + r/2(1 + r/3(...))) in double-double, |r| <= 0.35: 24 terms (0.35^25 / 25! < 2^-110)
  const rhH = (SPLIT * rh) - ((SPLIT * rh) - rh); const rhL = rh - rhH
  let eh = 1; let el = 0
  for (let n = 24; n >= 1; n--) {
    // (eh, el) * (rh, rl), Dekker's exact product of the high parts
    let ph = eh * rh
    const t = SPLIT * eh; const ehH = t - (t - eh); const ehL = eh - ehH
    let pl = ((ehH * rhH - ph) + ehH * rhL + ehL * rhH) + ehL * rhL
    pl += eh * rl + el * rh
    let th = ph + pl; pl = pl - (th - ph); ph = th
    // / n: the quotient's error from the exact remainder (n is a small integer: dh * n exact
    // up to one rounding, recovered by splitting dh)
    const dh = ph / n
    const u = SPLIT * dh; const dhH = u - (u - dh); const dhL = dh - dhH
    const mh = dh * n
    const ml = ((dhH * n - mh) + dhL * n)
    const dl = ((ph - mh) - ml + pl) / n
    // + 1
    th = 1 + dh
    const bv = th - 1
    eh = th; el = ((1 - (th - bv)) + (dh - bv)) + dl
    th = eh + el; el = el - (th - eh); eh = th
  }
  // 2^k * (eh + el): eh is (eh + el) rounded; scale exactly unless the result is subnormal
  if (k > 1000) return eh * 2 ** 1000 * 2 ** (k - 1000)
  if (k >= -1021) return eh * 2 ** k
  // subnormal: round eh + el once at the subnormal's precision
  const scale = 2 ** (k + 1000)
  const hi = eh * scale // exact (still normal)
  const lo = el * scale
  const r = (hi + lo) * 2 ** -1000
  return r
}
