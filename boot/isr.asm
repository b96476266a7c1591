; Interrupt and exception entry stubs (SDM Vol. 3A §6.12 exception handling,
; §6.14.2 64-bit stack frame). Every vector gets the same frame layout, pushing
; a zero where the CPU pushes no error code, so exception_dispatch() sees one
; struct (kernel/cpu/interrupt_frame.hpp). The frame is 16-byte aligned at the
; call, as the SysV ABI wants.

bits 64
extern exception_dispatch
global isr_stub_table

; Vectors whose exceptions push an error code: #DF 8, #TS 10, #NP 11, #SS 12,
; #GP 13, #PF 14, #AC 17, #CP 21, #VC 29, #SX 30.
%define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

section .text
%assign v 0
%rep 256
align 16
isr_stub_ %+ v:
%if HAS_ERROR(v)
    push qword v
%else
    push qword 0
    push qword v
%endif
    jmp isr_common
%assign v v + 1
%endrep

isr_common:
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
    mov rdi, rsp
    cld
    call exception_dispatch
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
    add rsp, 16                       ; vector and error code
    iretq

section .rodata
align 8
isr_stub_table:
%assign v 0
%rep 256
    dq isr_stub_ %+ v
%assign v v + 1
%endrep
