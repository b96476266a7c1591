; Guest entry: the first instruction the hypervisor runs in a guest.
;
; Start state (kernel/abi/guest_abi.hpp, docs/guest-abi.md): 64-bit long mode,
; RAM identity mapped by page tables the hypervisor built, RDI = BootInfo GPA,
; RSI = kBootMagic, RSP = kStackTopGpa, interrupts off, no IDT. We trust as
; little of that as possible: the runtime loads its own GDT, its own stack (in
; .bss) and a full 256-entry IDT before any C++ runs, so that any fault from
; then on is printed instead of becoming a triple fault. Vectors 0-31 are
; exceptions (hvg_exception) except the NMI, vector 2, which has its own
; handler (hvg_nmi); 32-255 are external interrupts (hvg_interrupt,
; guests/runtime/interrupt.hpp), delivered once a guest enables them.
; Then hvg_start(info, magic, entry_rsp) checks the BootInfo and calls
; guest_main; its return value is the exit code of the exit hypercall.

bits 64
default rel

HC_EXIT         equ 2                 ; hv::abi::Hypercall::exit
CODE_SEL        equ 0x08
DATA_SEL        equ 0x10
STACK_SIZE      equ 64 * 1024
EXCEPTIONS      equ 32                ; vectors 0-31: exceptions (SDM Vol. 3A §6.3)
VECTORS         equ 256               ; the whole IDT: 32-255 are interrupts
NMI_VECTOR      equ 2

; Vectors whose exceptions push an error code (SDM Vol. 3A §6.15): #DF 8,
; #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30.
%define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

extern hvg_start
extern hvg_exception
extern hvg_interrupt
extern hvg_nmi
extern __bss_start
extern __bss_end
global _start
global gdt_ptr                        ; shared with application vCPUs (ap_entry.asm)
global idt_ptr

section .text
_start:
    cli                               ; the ABI says they are off; make sure
    cld                               ; rep stosb below and the SysV ABI want DF = 0
    mov r12, rdi                      ; BootInfo GPA
    mov r13, rsi                      ; boot magic
    mov r14, rsp                      ; entry RSP, checked against kStackTopGpa

    ; Zero .bss (it holds our stack, IDT and every zero-initialised variable).
    ; Nothing here touches the stack, so the hypervisor's RSP is never used.
    mov rdi, __bss_start
    mov rcx, __bss_end
    sub rcx, rdi
    xor eax, eax
    rep stosb

    mov rsp, stack_top
    xor ebp, ebp                      ; ends frame-pointer chains

    ; Our own GDT: the hypervisor's may not match the selectors we use.
    lgdt [gdt_ptr]
    mov ax, DATA_SEL
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    push CODE_SEL                     ; reload CS through a far return
    lea rax, [.reloaded]
    push rax
    o64 retf
.reloaded:

    ; IDT gates for all 256 vectors: 64-bit interrupt gates (type 0xE, DPL 0,
    ; present, IST 0), SDM Vol. 3A Figure 6-8. Interrupt gates clear IF, so
    ; handlers never nest. No TSS is needed: everything arrives at CPL 0
    ; without IST, so the CPU never switches stacks.
    lea rdi, [idt]
    lea rsi, [isr_stub_table]
    mov ecx, VECTORS
.gate:
    mov rax, [rsi]
    mov [rdi], ax                     ; offset 15:0
    mov word [rdi + 2], CODE_SEL
    mov word [rdi + 4], 0x8E00        ; IST 0, type 0xE, DPL 0, P
    shr rax, 16
    mov [rdi + 6], ax                 ; offset 31:16
    shr rax, 16
    mov [rdi + 8], eax                ; offset 63:32
    mov dword [rdi + 12], 0
    add rsi, 8
    add rdi, 16
    dec ecx
    jnz .gate
    lidt [idt_ptr]

    mov rdi, r12
    mov rsi, r13
    mov rdx, r14
    call hvg_start

    mov edi, eax                      ; exit code = guest_main's return value
    mov eax, HC_EXIT
    vmcall
.hang:                                ; exit does not return; if it did, stay put
    cli
    hlt
    jmp .hang

; Stubs: every vector builds the same frame (hvg::ExceptionFrame), pushing a
; zero where the CPU pushes no error code (external interrupts never push one).
; RSP is 16-byte aligned at the call: the CPU aligns it before pushing its
; 5 (+1 error) words, and the stub pushes 2 (or 1) + 15 more, 22 words in all.
%assign v 0
%rep EXCEPTIONS
align 16
isr_stub_ %+ v:
%if v == NMI_VECTOR
    push qword 0
    push qword v
    jmp nmi_common
%else
%if !HAS_ERROR(v)
    push qword 0
%endif
    push qword v
    jmp isr_common
%endif
%assign v v + 1
%endrep

%rep VECTORS - EXCEPTIONS
align 16
isr_stub_ %+ v:
    push qword 0
    push qword v
    jmp irq_common
%assign v v + 1
%endrep

%macro SAVE_GPRS 0
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
%endmacro

%macro RESTORE_GPRS 0
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
%endmacro

; External interrupts: same frame, hvg_interrupt dispatches and sends the EOI.
irq_common:
    SAVE_GPRS
    mov rdi, rsp
    cld
    call hvg_interrupt
    RESTORE_GPRS
    add rsp, 16                       ; vector and error code
    iretq

; NMIs: same frame, hvg_nmi runs the guest's handler. They are kept apart
; from the exception path, which treats a second entry as a fault inside a
; fault handler: an NMI may arrive on any vCPU in the middle of anything. No
; nesting: the CPU blocks further NMIs until the IRETQ below.
nmi_common:
    SAVE_GPRS
    mov rdi, rsp
    cld
    call hvg_nmi
    RESTORE_GPRS
    add rsp, 16                       ; vector and error code
    iretq

isr_common:
    SAVE_GPRS
    mov rdi, rsp
    cld
    call hvg_exception                ; returns only when a hook handled it
    RESTORE_GPRS
    add rsp, 16                       ; vector and error code
    iretq

section .rodata
align 8
isr_stub_table:
%assign v 0
%rep VECTORS
    dq isr_stub_ %+ v
%assign v v + 1
%endrep

; Accessed bits preset so that loading a selector never writes the GDT.
align 16
gdt:
    dq 0                              ; null
    dq 0x00AF9B000000FFFF             ; 0x08: code, 64-bit (L=1), DPL 0, exec/read
    dq 0x00CF93000000FFFF             ; 0x10: data, read/write
gdt_end:

align 8
gdt_ptr:
    dw gdt_end - gdt - 1
    dq gdt

idt_ptr:
    dw VECTORS * 16 - 1
    dq idt

; The stack comes first in .bss so that an overflow runs into .data below it
; rather than into the IDT (2 MiB guest pages leave no room for a guard page).
section .bss
align 4096
stack_bottom:
    resb STACK_SIZE
stack_top:
align 16
idt:
    resb VECTORS * 16

section .note.GNU-stack noalloc noexec nowrite progbits
