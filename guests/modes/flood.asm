; A guest that floods its UART without ever looking at LSR (32-bit protected
; mode): its console ring overflows and it loses its own lines, counted, while
; the hypervisor console and the other guests carry on.
; Output: many "guest.flood" lines (most dropped).

bits 32
section .text
global start
start:
    cli
    mov dx, 0x3F8
.line:
    mov esi, msg
.next:
    lodsb
    test al, al
    jz .line
    out dx, al
    jmp .next

section .rodata
msg: db "guest.flood filler=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 10, 0
