; A multiboot 1 loader that starts one guest ELF (the first module) in QEMU
; the way the hypervisor would (docs/guest-abi.md): PT_LOAD segments copied to
; their p_paddr, an identity map of RAM only (2 MiB pages, PML4 at 0x1000,
; PDPT at 0x2000, page directories from 0x3000), BootInfo v2 at 0x8000 with
; the multiboot command line (minus its first word, the kernel's name) as
; args, then 64-bit mode at e_entry with RDI = 0x8000, RSI = the boot magic
; and RSP = 0x80000. Only for running the network guests against QEMU's own
; virtio-net-pci (tests/guestnet/run_qemu.py); not part of the hypervisor.

bits 32

MB_MAGIC        equ 0x1BADB002
MB_FLAGS        equ 0x00000003          ; page-align modules, memory info
BOOT_MAGIC_LO   equ 0x42564800          ; hv::abi::kBootMagic = 0x31424F4F42564800
BOOT_MAGIC_HI   equ 0x31424F4F
RAM_BYTES       equ 128 * 1024 * 1024   ; must match QEMU -m 128
BOOTINFO        equ 0x8000

section .text
align 4
mb_header:                                ; within the first 8 KiB of the file
    dd MB_MAGIC
    dd MB_FLAGS
    dd -(MB_MAGIC + MB_FLAGS)

global _start
_start:
    cli
    cld
    mov esp, stack_top
    cmp eax, 0x2BADB002
    jne fail
    mov [mbi], ebx
    test dword [ebx], 1 << 3              ; mods_* valid
    jz fail
    cmp dword [ebx + 20], 0               ; mods_count
    je fail
    mov esi, [ebx + 24]                   ; mods_addr
    mov eax, [esi]                        ; module start
    mov [elf], eax

    ; --- copy PT_LOAD segments ---
    mov ebp, [elf]
    cmp dword [ebp], 0x464C457F           ; "\x7fELF"
    jne fail
    mov eax, [ebp + 0x18]                 ; e_entry (low 32 bits)
    mov [entry], eax
    mov ebx, ebp
    add ebx, [ebp + 0x20]                 ; program headers
    movzx ecx, word [ebp + 0x38]          ; e_phnum
    movzx edx, word [ebp + 0x36]          ; e_phentsize
    mov [phentsize], edx
.ph:
    test ecx, ecx
    jz .ph_done
    cmp dword [ebx], 1                    ; PT_LOAD
    jne .ph_next
    push ecx
    mov edi, [ebx + 0x18]                 ; p_paddr
    mov esi, ebp
    add esi, [ebx + 0x08]                 ; p_offset
    mov ecx, [ebx + 0x20]                 ; p_filesz
    rep movsb
    mov ecx, [ebx + 0x28]                 ; p_memsz
    sub ecx, [ebx + 0x20]
    xor eax, eax
    rep stosb
    mov eax, edi                          ; segment end
    add eax, 0xFFF
    and eax, ~0xFFF
    cmp eax, [image_end]
    jbe .no_end
    mov [image_end], eax
.no_end:
    pop ecx
.ph_next:
    add ebx, [phentsize]
    dec ecx
    jmp .ph
.ph_done:

    ; --- page tables: RAM only, 2 MiB pages ---
    mov edi, 0x1000
    mov ecx, 0x6000
    xor eax, eax
    rep stosb
    mov dword [0x1000], 0x2000 | 3
    mov dword [0x2000], 0x3000 | 3        ; RAM_BYTES < 1 GiB: one page directory
    xor ecx, ecx
.pd:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83                          ; present, writable, 2 MiB
    mov [0x3000 + ecx * 8], eax
    inc ecx
    cmp ecx, RAM_BYTES >> 21
    jb .pd

    ; --- BootInfo v2 ---
    mov edi, BOOTINFO
    mov ecx, 224
    xor eax, eax
    rep stosb
    mov dword [BOOTINFO + 0], 2           ; version
    mov dword [BOOTINFO + 4], 224         ; size
    mov dword [BOOTINFO + 8], 2           ; hypercall_abi
    mov dword [BOOTINFO + 16], 'qemu'
    mov dword [BOOTINFO + 48], RAM_BYTES  ; memory_bytes
    mov dword [BOOTINFO + 56], 0x100000   ; image_start
    mov eax, [image_end]
    mov [BOOTINFO + 64], eax
    mov dword [BOOTINFO + 80], 1          ; cpu_count
    mov word [BOOTINFO + 88], 0x3F8       ; console_port
    ; args: the command line after its first word
    mov ebx, [mbi]
    test dword [ebx], 1 << 2
    jz .no_cmdline
    mov esi, [ebx + 16]
.skip_name:
    lodsb
    test al, al
    jz .no_cmdline
    cmp al, ' '
    jne .skip_name
    mov edi, BOOTINFO + 96
    mov ecx, 127
.copy_args:
    lodsb
    test al, al
    jz .no_cmdline
    stosb
    loop .copy_args
.no_cmdline:

    ; --- no legacy 8259 interrupts: the firmware leaves the PIC delivering
    ; IRQ 0 at vector 8, which a guest would take for a #DF; the hypervisor
    ; has no PIC at all ---
    mov al, 0xFF
    out 0x21, al
    out 0xA1, al

    ; --- x2APIC mode, as the hypervisor starts its guests (EN and EXTD set
    ; in IA32_APIC_BASE, SDM Vol. 3A §11.12.1), when the CPU has it (KVM) ---
    mov eax, 1
    cpuid
    test ecx, 1 << 21
    jz .no_x2apic
    mov ecx, 0x1B
    rdmsr
    or eax, (1 << 11) | (1 << 10)
    wrmsr
.no_x2apic:

    ; --- long mode (SDM Vol. 3A §9.8.5) ---
    mov eax, cr4
    or eax, 1 << 5                        ; PAE
    mov cr4, eax
    mov eax, 0x1000
    mov cr3, eax
    mov ecx, 0xC0000080                   ; EFER
    rdmsr
    or eax, 1 << 8                        ; LME
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | 1                 ; PG | PE
    mov cr0, eax
    lgdt [gdt_ptr]
    jmp 0x08:long_mode

fail:
    mov dx, 0xF4                          ; isa-debug-exit: QEMU exits with 0x7F
    mov eax, 0x3F
    out dx, eax
    hlt
    jmp fail

bits 64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, 0x80000
    mov edi, BOOTINFO
    mov rsi, (BOOT_MAGIC_HI << 32) | BOOT_MAGIC_LO
    mov eax, [entry]
    jmp rax

section .data
align 8
gdt:
    dq 0
    dq 0x00AF9B000000FFFF                 ; 64-bit code
    dq 0x00CF93000000FFFF                 ; data
gdt_ptr:
    dw gdt_ptr - gdt - 1
    dd gdt
mbi:        dd 0
elf:        dd 0
entry:      dd 0
phentsize:  dd 0
image_end:  dd 0

section .bss
align 16
    resb 4096
stack_top:
