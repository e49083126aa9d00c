//! MMU (placeholder).
use crate::config::Mmu;
use crate::kinds::Shape;
use crate::run::Region;
pub fn enable(_mmu: Mmu, _ram: Region, _uart: u64, _ee: bool) -> Result<(), &'static str> {
    Err("mmu: not yet")
}
pub fn can_map(_shape: Shape, _address: u64) -> bool {
    false
}
pub fn map_window(_shape: Shape, _address: u64, _usr: bool) -> u32 {
    0
}
