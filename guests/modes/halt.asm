; A guest that halts with interrupts disabled (32-bit protected mode): nothing
; can wake it, so the hypervisor stops it as "halted" (not a failure).
; Output: guest.halt

bits 32
section .text
global start
start:
    mov dx, 0x3F8
    mov esi, msg
.next:
    lodsb
    test al, al
    jz .halt
    out dx, al
    jmp .next
.halt:
    cli
    hlt
    jmp .halt

section .rodata
msg: db "guest.halt", 10, 0
