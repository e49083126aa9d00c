//! The benchmark's work on `aarch64-paging` 0.12: an identity-mapped `IdMap` in the `Stage2`
//! regime (root level 1, heap-allocated tables), kept inactive as a VMM builds tables before a
//! VM runs (live changes needing break-before-make are refused by that crate).

use std::hint::black_box;
use std::time::Instant;

use aarch64_paging::descriptor::Stage2Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2};

use crate::{BASE, LOOKUPS, PAGE, Rng, SIZE, Times};

/// Normal Write-Back RAM, read/write, Inner Shareable, access flag set: what Moat writes.
const RAM: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
    .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::SH_INNER)
    .union(Stage2Attributes::ACCESS_FLAG);
const ROOT_LEVEL: usize = 1;

/// One repetition of the work.
pub fn run() -> Times {
    let mut idmap = IdMap::new(ROOT_LEVEL, Stage2);
    let mut times = Times::default();

    let start = Instant::now();
    map_pages(&mut idmap);
    times.map = start.elapsed();

    let start = Instant::now();
    let mut rng = Rng::default();
    for _ in 0..LOOKUPS {
        let pa = translate(&idmap, rng.next_ipa()).expect("mapped");
        times.checksum = times.checksum.wrapping_add(black_box(pa));
    }
    times.translate = start.elapsed();

    let start = Instant::now();
    let all = MemoryRegion::new(BASE as usize, (BASE + SIZE) as usize);
    idmap
        .map_range(&all, Stage2Attributes::empty())
        .expect("unmap");
    times.unmap_all = start.elapsed();

    map_pages(&mut idmap);
    let start = Instant::now();
    for page in (BASE..BASE + SIZE).step_by(PAGE as usize) {
        let region = MemoryRegion::new(page as usize, (page + PAGE) as usize);
        idmap
            .map_range(&region, Stage2Attributes::empty())
            .expect("unmap");
    }
    // Unmapping pages leaves empty tables behind; freeing them is a separate pass.
    idmap.compact_subtables();
    times.unmap_pages = start.elapsed();
    times
}

fn map_pages(idmap: &mut IdMap<Stage2>) {
    for page in (BASE..BASE + SIZE).step_by(PAGE as usize) {
        let region = MemoryRegion::new(page as usize, (page + PAGE) as usize);
        idmap.map_range(&region, RAM).expect("map");
    }
}

/// The crate has no lookup call: a walk of the one page holding `ipa` finds its leaf.
fn translate(idmap: &IdMap<Stage2>, ipa: u64) -> Option<u64> {
    let mut found = None;
    let region = MemoryRegion::new(ipa as usize, ipa as usize + 1);
    let result = idmap.walk_range(&region, &mut |_, desc, level| {
        if desc.is_valid() {
            let size = PAGE << (9 * (3 - level));
            found = Some(desc.output_address().0 as u64 + (ipa & (size - 1)));
        }
        Ok(())
    });
    result.ok().and(found)
}
