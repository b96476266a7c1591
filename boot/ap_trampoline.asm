; Application processor trampoline (SDM Vol. 3A §9.4.4 MP initialization, §10.4).
;
; A STARTUP IPI starts the AP in real mode at CS:IP = (vector << 8):0000, so this
; blob is copied at run time to a free 4 KiB page below 1 MiB. It is position
; independent: all its own addresses are offsets from its start, and the fields
; in the data block below are filled in by the BSP before each start
; (kernel/cpu/smp.cpp): the GDT pointer and far-jump targets with the page's
; address, the kernel CR3 (a PML4 below 4 GiB) and the 64-bit entry.
; ap_entry64 then takes this CPU's stack and argument from the block.

bits 16

CR0_PE   equ 1 << 0
CR0_WP   equ 1 << 16
CR0_PG   equ 1 << 31
CR4_PAE  equ 1 << 5
MSR_EFER equ 0xC0000080
EFER_LME equ 1 << 8
EFER_NXE equ 1 << 11

global ap_tramp_gdtr_base
global ap_tramp_far32
global ap_tramp_far64
global ap_tramp_cr3
global ap_tramp_stack
global ap_tramp_arg
global ap_tramp_gdt
global ap_entry64
global ap_tramp_start
extern ap_main

section .ap_trampoline progbits alloc noexec nowrite align=16
ap_tramp_start:
tramp_start:
    cli
    cld
    mov ax, cs
    mov ds, ax
    xor ebx, ebx
    mov bx, ax
    shl ebx, 4                        ; EBX = linear address of this page
    o32 lgdt [tramp_gdtr - tramp_start]
    mov eax, cr0
    or eax, CR0_PE
    mov cr0, eax
    o32 jmp far [ap_tramp_far32 - tramp_start]

bits 32
tramp_pm32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov eax, [ebx + (ap_tramp_cr3 - tramp_start)]
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME | EFER_NXE
    wrmsr
    mov eax, cr0
    or eax, CR0_PG | CR0_WP
    mov cr0, eax
    jmp far [ebx + (ap_tramp_far64 - tramp_start)]

align 16
; GDT: null, 32-bit code (0x08), data (0x10), 64-bit code (0x18).
; The accessed bits (type 0x9B/0x93) are preset: loading a descriptor whose
; accessed bit is clear makes the CPU write it (SDM Vol. 3A §3.4.5.1), and this
; page is mapped read-only once paging is on, so that write would #PF (Bochs
; does it; QEMU TCG skips it).
ap_tramp_gdt:
    dq 0
    dq 0x00CF9B000000FFFF
    dq 0x00CF93000000FFFF
    dq 0x00AF9B000000FFFF
tramp_gdt_end:
tramp_gdtr:
    dw tramp_gdt_end - ap_tramp_gdt - 1
ap_tramp_gdtr_base:
    dd 0                              ; BSP: page + (ap_tramp_gdt - start)
align 4
ap_tramp_far32:
    dd 0                              ; BSP: page + (tramp_pm32 - start)
    dw 0x08
align 4
ap_tramp_far64:
    dd 0                              ; BSP: ap_entry64 (below 4 GiB)
    dw 0x18
align 8
ap_tramp_cr3:
    dq 0
ap_tramp_stack:
    dq 0                              ; top of this AP's kernel stack (virtual)
ap_tramp_arg:
    dq 0                              ; this AP's PerCpu pointer

global ap_tramp_pm32
ap_tramp_pm32 equ tramp_pm32

; The 64-bit continuation lives in the kernel image (not copied): EBX still
; holds the trampoline page's address.
section .boot.text progbits alloc exec nowrite align=16
bits 64
ap_entry64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov ebx, ebx
    mov rsp, [rbx + (ap_tramp_stack - tramp_start)]
    mov rdi, [rbx + (ap_tramp_arg - tramp_start)]
    xor ebp, ebp
    call ap_main
.hang:
    cli
    hlt
    jmp .hang
