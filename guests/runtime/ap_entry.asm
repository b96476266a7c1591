; Application vCPU entry. The vcpu_start hypercall (docs/guest-abi.md "vCPUs")
; starts a vCPU here in 64-bit mode with the starter's paging, RSP = the stack
; the starter gave it and RDI = its vCPU index, but with no GDT or IDT of its
; own (GDTR and IDTR are per CPU). Load the runtime's, then run C++.

bits 64
default rel

CODE_SEL        equ 0x08
DATA_SEL        equ 0x10

extern gdt_ptr
extern idt_ptr
extern hvg_ap_start
global hvg_ap_entry

section .text
hvg_ap_entry:
    cli
    cld
    lgdt [gdt_ptr]
    mov ax, DATA_SEL
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    push CODE_SEL
    lea rax, [.reloaded]
    push rax
    o64 retf
.reloaded:
    lidt [idt_ptr]
    xor ebp, ebp                      ; ends frame-pointer chains
    and rsp, -16                      ; SysV: 16-byte aligned before the call
    call hvg_ap_start                 ; RDI = vCPU index, untouched so far
.hang:                                ; an AP's function returned: park this vCPU
    cli
    hlt
    jmp .hang
