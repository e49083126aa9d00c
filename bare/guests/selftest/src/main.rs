//! `moat-guest-selftest`: the guest test suite for the runtime itself and the basics Moat must
//! give every guest (console, PSCI, RAM, its own exception vectors). One test per boot, selected
//! by `moat.test=<name>`; results as `MOAT-TEST` lines (see `bare/guests/README.md`).
#![no_std]
#![no_main]

mod aborts;
mod exceptions;
mod gicv2;
mod idregs;
mod interrupts;
mod psci;
mod ram;

use aborts::{
    branch_to_a_misaligned_address_is_a_pc_alignment_fault,
    cache_maintenance_by_va_of_a_hole_or_device_completes,
    misaligned_access_to_a_hole_is_an_alignment_fault,
    misaligned_load_from_a_device_is_an_alignment_fault,
};
use exceptions::{brk_is_taken_by_guest_vectors, svc_is_taken_by_guest_vectors};
use gicv2::gicv2_sgis_between_two_vcpus_carry_their_source;
use idregs::{
    id_register_reads_write_only_their_target, moat_hides_sve_sme_and_el2,
    parange_is_the_vm_parange, sve_is_undefined_as_the_id_registers_say,
};
use interrupts::{
    sgi_to_self_arrives_through_the_gic, virtual_timer_interrupt_arrives_through_the_gic,
};
use moat_guest_rt::{TestResult, println};
use psci::{psci_system_off_powers_off, psci_version_is_1_1_or_later};
use ram::ram_load_store;

moat_guest_rt::tests![
    console_hello,
    psci_version_is_1_1_or_later,
    psci_system_off_powers_off,
    ram_load_store,
    brk_is_taken_by_guest_vectors,
    svc_is_taken_by_guest_vectors,
    parange_is_the_vm_parange,
    moat_hides_sve_sme_and_el2,
    sve_is_undefined_as_the_id_registers_say,
    id_register_reads_write_only_their_target,
    virtual_timer_interrupt_arrives_through_the_gic,
    sgi_to_self_arrives_through_the_gic,
    gicv2_sgis_between_two_vcpus_carry_their_source,
    misaligned_load_from_a_device_is_an_alignment_fault,
    misaligned_access_to_a_hole_is_an_alignment_fault,
    branch_to_a_misaligned_address_is_a_pc_alignment_fault,
    cache_maintenance_by_va_of_a_hole_or_device_completes,
];

/// The console works: this line reaches the host.
fn console_hello() -> TestResult {
    println!("Hello from the Moat selftest guest!");
    Ok(())
}
