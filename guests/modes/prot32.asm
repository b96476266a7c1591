; A guest that starts in 32-bit protected mode with paging off (config:
; mode = "protected32"), loaded at 64 KiB. It proves its mode from inside:
; CR0.PE = 1 and CR0.PG = 0 (read through the shadow), and 32-bit code runs.
; Output: guest.prot32 pe=1 pg=0

bits 32
section .text
global start
start:
    cli
    mov esi, msg
    call print
    mov eax, cr0
    mov ebx, eax
    and eax, 1
    add al, '0'
    mov dx, 0x3F8
    out dx, al
    mov esi, msg_pg
    call print
    mov eax, ebx
    shr eax, 31
    add al, '0'
    out dx, al
    mov al, 10
    out dx, al
    mov eax, 2                        ; hypercall exit
    xor edi, edi
    vmcall
.hang:
    hlt
    jmp .hang

print:
    mov dx, 0x3F8
.next:
    lodsb
    test al, al
    jz .done
    out dx, al
    jmp .next
.done:
    ret

section .rodata
msg:    db "guest.prot32 pe=", 0
msg_pg: db " pg=", 0
