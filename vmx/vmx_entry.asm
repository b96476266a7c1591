; VM entry and exit (SDM Vol. 3C §27 "VM entries", §28.5 "Loading host state").
;
; uint64_t vmx_enter(GuestRegs* regs, uint64_t launched)
;   Saves the callee-saved host registers, records RSP as HOST_RSP, loads the
;   guest's general registers from *regs and executes VMLAUNCH (launched = 0)
;   or VMRESUME. A VM exit lands in vmx_exit (HOST_RIP) on the same stack, which
;   stores the guest registers back and returns 0 from vmx_enter. If the
;   instruction itself fails, vmx_enter returns 1 (VMfailInvalid) or 2
;   (VMfailValid: the reason is in the VM-instruction error field).
; GuestRegs is 17 quadwords in GPR-encoding order: rax, rcx, rdx, rbx, rsp
; (unused: the guest RSP lives in the VMCS), rbp, rsi, rdi, r8..r15, cr2.

bits 64
section .text

HOST_RSP equ 0x6C14

%define R(n) [rdi + (n) * 8]

global vmx_enter
global vmx_exit

vmx_enter:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                          ; regs pointer, found again at [rsp] on exit
    mov rax, HOST_RSP
    vmwrite rax, rsp
    jbe .fail_write

    mov rax, R(16)                    ; guest CR2 is not part of the VMCS
    mov cr2, rax
    test rsi, rsi
    mov rax, R(0)
    mov rcx, R(1)
    mov rdx, R(2)
    mov rbx, R(3)
    mov rbp, R(5)
    mov rsi, R(6)
    mov r8, R(8)
    mov r9, R(9)
    mov r10, R(10)
    mov r11, R(11)
    mov r12, R(12)
    mov r13, R(13)
    mov r14, R(14)
    mov r15, R(15)
    jnz .resume                       ; flags from `test rsi, rsi` survive the movs
    mov rdi, R(7)
    vmlaunch
    jmp .failed
.resume:
    mov rdi, R(7)
    vmresume
.failed:
    ; Still in root operation: CF=1 VMfailInvalid, ZF=1 VMfailValid.
    mov eax, 1
    jc .out
    mov eax, 2
.out:
    pop rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
.fail_write:
    mov eax, 1
    jmp .out

vmx_exit:
    ; RSP = HOST_RSP: [rsp] holds the regs pointer. Swap it with guest RDI.
    xchg rdi, [rsp]
    mov R(0), rax
    mov R(1), rcx
    mov R(2), rdx
    mov R(3), rbx
    mov R(5), rbp
    mov R(6), rsi
    mov R(8), r8
    mov R(9), r9
    mov R(10), r10
    mov R(11), r11
    mov R(12), r12
    mov R(13), r13
    mov R(14), r14
    mov R(15), r15
    mov rax, cr2
    mov R(16), rax
    pop rax                           ; guest RDI
    mov R(7), rax
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    xor eax, eax
    ret
