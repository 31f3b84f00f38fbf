//! Divide and conquer over the middle snake, with xdiff's cost heuristics (`xdl_recs_cmp`,
//! `xdl_split`).

use super::DiffFile;

/// Below this cost the search is always exact.
const MAX_COST_MIN: usize = 256;
/// Past this cost, a long enough snake is taken as a split point.
const HEUR_MIN_COST: isize = 256;
/// A snake longer than this is "good".
const SNAKE_CNT: isize = 20;
/// Factor of the cost a diagonal's progress must beat to be "interesting".
const K_HEUR: isize = 4;
/// The backward sentinel (`XDL_LINE_MAX`).
const LINE_MAX: isize = isize::MAX;

/// Where to cut a box, and whether each half must be searched exactly.
struct Split {
    i1: isize,
    i2: isize,
    min_lo: bool,
    min_hi: bool,
}

/// The forward and backward furthest-reaching vectors, indexed by diagonal (which may be
/// negative, hence the offset).
struct Kv {
    fwd: Vec<isize>,
    bwd: Vec<isize>,
    offset: isize,
}

impl Kv {
    #[inline]
    fn f(&self, d: isize) -> isize {
        self.fwd[(d + self.offset) as usize]
    }
    #[inline]
    fn set_f(&mut self, d: isize, v: isize) {
        self.fwd[(d + self.offset) as usize] = v;
    }
    #[inline]
    fn b(&self, d: isize) -> isize {
        self.bwd[(d + self.offset) as usize]
    }
    #[inline]
    fn set_b(&mut self, d: isize, v: isize) {
        self.bwd[(d + self.offset) as usize] = v;
    }
}

/// Marks the changed lines of both files among those selected for the search.
pub(super) fn compare(fa: &mut DiffFile, fb: &mut DiffFile, minimal: bool) {
    let n1 = fa.ha.len();
    let n2 = fb.ha.len();
    let ndiags = n1 + n2 + 3;
    let mut kv = Kv {
        fwd: vec![0; ndiags + 1],
        bwd: vec![0; ndiags + 1],
        offset: n2 as isize + 1,
    };
    let mxcost = super::bogosqrt(ndiags).max(MAX_COST_MIN) as isize;
    let ha1 = &fa.ha;
    let ha2 = &fb.ha;

    // Each box is independent of the others, so a stack replaces xdiff's recursion.
    let mut boxes = vec![(0isize, n1 as isize, 0isize, n2 as isize, minimal)];
    while let Some((mut off1, mut lim1, mut off2, mut lim2, need_min)) = boxes.pop() {
        while off1 < lim1 && off2 < lim2 && ha1[off1 as usize] == ha2[off2 as usize] {
            off1 += 1;
            off2 += 1;
        }
        while off1 < lim1 && off2 < lim2 && ha1[lim1 as usize - 1] == ha2[lim2 as usize - 1] {
            lim1 -= 1;
            lim2 -= 1;
        }
        if off1 == lim1 {
            for k in off2..lim2 {
                fb.changed[fb.rindex[k as usize] + 1] = true;
            }
        } else if off2 == lim2 {
            for k in off1..lim1 {
                fa.changed[fa.rindex[k as usize] + 1] = true;
            }
        } else {
            let spl = split(ha1, off1, lim1, ha2, off2, lim2, &mut kv, need_min, mxcost);
            boxes.push((spl.i1, lim1, spl.i2, lim2, spl.min_hi));
            boxes.push((off1, spl.i1, off2, spl.i2, spl.min_lo));
        }
    }
}

/// Finds where to cut the box `(off1, off2)..(lim1, lim2)`: the middle snake, or past the cost
/// bounds a good-enough point.
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the box and state of xdiff's search"
)]
fn split(
    ha1: &[u32],
    off1: isize,
    lim1: isize,
    ha2: &[u32],
    off2: isize,
    lim2: isize,
    kv: &mut Kv,
    need_min: bool,
    mxcost: isize,
) -> Split {
    let h1 = |i: isize| ha1[i as usize];
    let h2 = |i: isize| ha2[i as usize];
    let dmin = off1 - lim2;
    let dmax = lim1 - off2;
    let fmid = off1 - off2;
    let bmid = lim1 - lim2;
    let odd = (fmid - bmid) & 1 != 0;
    let (mut fmin, mut fmax) = (fmid, fmid);
    let (mut bmin, mut bmax) = (bmid, bmid);

    kv.set_f(fmid, off1);
    kv.set_b(bmid, lim1);

    let mut ec: isize = 1;
    loop {
        let mut got_snake = false;

        if fmin > dmin {
            fmin -= 1;
            kv.set_f(fmin - 1, -1);
        } else {
            fmin += 1;
        }
        if fmax < dmax {
            fmax += 1;
            kv.set_f(fmax + 1, -1);
        } else {
            fmax -= 1;
        }

        let mut d = fmax;
        while d >= fmin {
            let k = (d + kv.offset) as usize;
            let (lo, hi) = (kv.fwd[k - 1], kv.fwd[k + 1]);
            let prev1 = if lo >= hi { lo + 1 } else { hi };
            let run = snake_forward(ha1, ha2, prev1, prev1 - d, lim1, lim2);
            let i1 = prev1 + run;
            let i2 = i1 - d;
            if run > SNAKE_CNT {
                got_snake = true;
            }
            kv.fwd[k] = i1;
            if odd && bmin <= d && d <= bmax && kv.bwd[k] <= i1 {
                return Split {
                    i1,
                    i2,
                    min_lo: true,
                    min_hi: true,
                };
            }
            d -= 2;
        }

        if bmin > dmin {
            bmin -= 1;
            kv.set_b(bmin - 1, LINE_MAX);
        } else {
            bmin += 1;
        }
        if bmax < dmax {
            bmax += 1;
            kv.set_b(bmax + 1, LINE_MAX);
        } else {
            bmax -= 1;
        }

        let mut d = bmax;
        while d >= bmin {
            let k = (d + kv.offset) as usize;
            let (lo, hi) = (kv.bwd[k - 1], kv.bwd[k + 1]);
            let prev1 = if lo < hi { lo } else { hi - 1 };
            let run = snake_backward(ha1, ha2, prev1, prev1 - d, off1, off2);
            let i1 = prev1 - run;
            let i2 = i1 - d;
            if run > SNAKE_CNT {
                got_snake = true;
            }
            kv.bwd[k] = i1;
            if !odd && fmin <= d && d <= fmax && i1 <= kv.fwd[k] {
                return Split {
                    i1,
                    i2,
                    min_lo: true,
                    min_hi: true,
                };
            }
            d -= 2;
        }

        if !need_min {
            if got_snake && ec > HEUR_MIN_COST {
                if let Some(spl) =
                    forward_heuristic(kv, h1, h2, ec, (fmin, fmax, fmid), off1, lim1, off2, lim2)
                {
                    return spl;
                }
                if let Some(spl) =
                    backward_heuristic(kv, h1, h2, ec, (bmin, bmax, bmid), off1, lim1, off2, lim2)
                {
                    return spl;
                }
            }
            if ec >= mxcost {
                return furthest(kv, (fmin, fmax), (bmin, bmax), off1, lim1, off2, lim2);
            }
        }
        ec += 1;
    }
}

/// Length of the run of equal lines from `(i1, i2)` forward, within the box.
#[inline]
fn snake_forward(
    ha1: &[u32],
    ha2: &[u32],
    i1: isize,
    i2: isize,
    lim1: isize,
    lim2: isize,
) -> isize {
    if i1 >= lim1 || i2 >= lim2 || ha1[i1 as usize] != ha2[i2 as usize] {
        return 0;
    }
    let a = &ha1[i1 as usize..lim1 as usize];
    let b = &ha2[i2 as usize..lim2 as usize];
    a.iter().zip(b).take_while(|(x, y)| x == y).count() as isize
}

/// Length of the run of equal lines ending just before `(i1, i2)`, within the box.
#[inline]
fn snake_backward(
    ha1: &[u32],
    ha2: &[u32],
    i1: isize,
    i2: isize,
    off1: isize,
    off2: isize,
) -> isize {
    if i1 <= off1 || i2 <= off2 || ha1[i1 as usize - 1] != ha2[i2 as usize - 1] {
        return 0;
    }
    let a = &ha1[off1 as usize..i1 as usize];
    let b = &ha2[off2 as usize..i2 as usize];
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count() as isize
}

/// A forward diagonal that went far and ends in a long snake is taken as the split point.
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the box and state of xdiff's search"
)]
fn forward_heuristic(
    kv: &Kv,
    h1: impl Fn(isize) -> u32,
    h2: impl Fn(isize) -> u32,
    ec: isize,
    (fmin, fmax, fmid): (isize, isize, isize),
    off1: isize,
    lim1: isize,
    off2: isize,
    lim2: isize,
) -> Option<Split> {
    let mut best = 0;
    let mut found = None;
    let mut d = fmax;
    while d >= fmin {
        let dd = if d > fmid { d - fmid } else { fmid - d };
        let i1 = kv.f(d);
        let i2 = i1 - d;
        let v = (i1 - off1) + (i2 - off2) - dd;
        if v > K_HEUR * ec
            && v > best
            && off1 + SNAKE_CNT <= i1
            && i1 < lim1
            && off2 + SNAKE_CNT <= i2
            && i2 < lim2
        {
            let mut k = 1;
            while h1(i1 - k) == h2(i2 - k) {
                if k == SNAKE_CNT {
                    best = v;
                    found = Some((i1, i2));
                    break;
                }
                k += 1;
            }
        }
        d -= 2;
    }
    found.map(|(i1, i2)| Split {
        i1,
        i2,
        min_lo: true,
        min_hi: false,
    })
}

/// The backward counterpart of [`forward_heuristic`].
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the box and state of xdiff's search"
)]
fn backward_heuristic(
    kv: &Kv,
    h1: impl Fn(isize) -> u32,
    h2: impl Fn(isize) -> u32,
    ec: isize,
    (bmin, bmax, bmid): (isize, isize, isize),
    off1: isize,
    lim1: isize,
    off2: isize,
    lim2: isize,
) -> Option<Split> {
    let mut best = 0;
    let mut found = None;
    let mut d = bmax;
    while d >= bmin {
        let dd = if d > bmid { d - bmid } else { bmid - d };
        let i1 = kv.b(d);
        let i2 = i1 - d;
        let v = (lim1 - i1) + (lim2 - i2) - dd;
        if v > K_HEUR * ec
            && v > best
            && off1 < i1
            && i1 <= lim1 - SNAKE_CNT
            && off2 < i2
            && i2 <= lim2 - SNAKE_CNT
        {
            let mut k = 0;
            while h1(i1 + k) == h2(i2 + k) {
                if k == SNAKE_CNT - 1 {
                    best = v;
                    found = Some((i1, i2));
                    break;
                }
                k += 1;
            }
        }
        d -= 2;
    }
    found.map(|(i1, i2)| Split {
        i1,
        i2,
        min_lo: false,
        min_hi: true,
    })
}

/// Past the cost bound: the furthest-reaching point of either search.
fn furthest(
    kv: &Kv,
    (fmin, fmax): (isize, isize),
    (bmin, bmax): (isize, isize),
    off1: isize,
    lim1: isize,
    off2: isize,
    lim2: isize,
) -> Split {
    let mut fbest = -1;
    let mut fbest1 = -1;
    let mut d = fmax;
    while d >= fmin {
        let mut i1 = kv.f(d).min(lim1);
        let mut i2 = i1 - d;
        if lim2 < i2 {
            i1 = lim2 + d;
            i2 = lim2;
        }
        if fbest < i1 + i2 {
            fbest = i1 + i2;
            fbest1 = i1;
        }
        d -= 2;
    }
    let mut bbest = LINE_MAX;
    let mut bbest1 = LINE_MAX;
    let mut d = bmax;
    while d >= bmin {
        let mut i1 = off1.max(kv.b(d));
        let mut i2 = i1 - d;
        if i2 < off2 {
            i1 = off2 + d;
            i2 = off2;
        }
        if i1 + i2 < bbest {
            bbest = i1 + i2;
            bbest1 = i1;
        }
        d -= 2;
    }
    if (lim1 + lim2) - bbest < fbest - (off1 + off2) {
        Split {
            i1: fbest1,
            i2: fbest - fbest1,
            min_lo: true,
            min_hi: false,
        }
    } else {
        Split {
            i1: bbest1,
            i2: bbest - bbest1,
            min_lo: false,
            min_hi: true,
        }
    }
}
