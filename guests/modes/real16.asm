; A guest that starts in 16-bit real mode (config: mode = "real16"), loaded at
; 64 KiB. It proves its mode from inside: SMSW shows CR0.PE = 0, and a far
; address computed through CS (segment << 4) reaches its own message. Then it
; prints through the UART port and leaves with the exit hypercall.
; CS:IP = (entry >> 4):(entry & 0xF), so offsets from `start` address its data.
; Output: guest.real16 pe=0 cs=0x1100

bits 16
section .text
global start
start:
    cli
    mov ax, cs
    mov ds, ax                        ; data in this segment, addressed from its base
    mov si, msg - start
    call print
    smsw ax                           ; CR0 low word through the read shadow
    and al, 1
    add al, '0'
    mov dx, 0x3F8
    out dx, al
    mov si, msg_cs - start
    call print
    mov ax, cs
    call print_hex16
    mov al, 10
    out dx, al
    mov eax, 2                        ; hypercall exit
    xor edi, edi                      ; code 0
    vmcall
.hang:
    hlt
    jmp .hang

; prints the NUL-terminated string at ds:si
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

; prints ax as 0xNNNN
print_hex16:
    mov bx, ax
    mov al, '0'
    out dx, al
    mov al, 'x'
    out dx, al
    mov cx, 4
.digit:
    rol bx, 4
    mov al, bl
    and al, 0x0F
    cmp al, 10
    jb .dec
    add al, 'a' - 10 - '0'
.dec:
    add al, '0'
    out dx, al
    loop .digit
    ret

msg:    db "guest.real16 pe=", 0
msg_cs: db " cs=", 0
