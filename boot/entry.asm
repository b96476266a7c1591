; Boot entry: multiboot 1 and 2 headers, 32-bit protected mode -> 64-bit long mode.
;
; Both loaders (GRUB via multiboot2 on BIOS or UEFI, QEMU -kernel or GRUB via
; multiboot 1) enter here in 32-bit protected mode with paging off, EAX = magic
; and EBX = physical address of the boot information (Multiboot 0.6.96 §3.2,
; Multiboot2 1.6 §3.3). We check the CPU, build a throw-away identity map of the
; low 4 GiB with 2 MiB pages, enable long mode and call kernel_main_bsp(magic, info).
; The C++ side then builds the real page tables (W^X, NX, direct map).

bits 32

MB1_MAGIC       equ 0x1BADB002
MB1_PAGE_ALIGN  equ 1 << 0           ; modules page-aligned
MB1_MEMINFO     equ 1 << 1           ; we want mem_* and the memory map
MB1_AOUT_KLUDGE equ 1 << 16          ; load by the address fields below: lets QEMU
                                     ; -kernel load an ELF64 image (it refuses ELF64)
MB1_FLAGS       equ MB1_PAGE_ALIGN | MB1_MEMINFO | MB1_AOUT_KLUDGE

MB2_MAGIC       equ 0xE85250D6
MB2_ARCH_I386   equ 0

COM1            equ 0x3F8

CR0_PE          equ 1 << 0
CR0_WP          equ 1 << 16           ; supervisor writes honour read-only pages (W^X)
CR0_PG          equ 1 << 31
CR4_PAE         equ 1 << 5
MSR_EFER        equ 0xC0000080
EFER_LME        equ 1 << 8
EFER_NXE        equ 1 << 11           ; NX bit in page tables (W^X needs it)

PTE_P           equ 1 << 0
PTE_RW          equ 1 << 1
PTE_PS          equ 1 << 7

extern __image_start
extern __load_end
extern __bss_start
extern __bss_end
extern kernel_main_bsp

global entry32
global boot_tsc
global boot_stack_top
global boot_gdt64_ptr

section .multiboot progbits alloc noexec nowrite align=8
align 4
mb1_header:
    dd MB1_MAGIC
    dd MB1_FLAGS
    dd -(MB1_MAGIC + MB1_FLAGS)
    dd mb1_header                     ; header_addr
    dd __image_start                  ; load_addr
    dd __load_end                     ; load_end_addr
    dd __bss_end                      ; bss_end_addr (loader zeroes the bss)
    dd entry32                        ; entry_addr

align 8
mb2_header:
    dd MB2_MAGIC
    dd MB2_ARCH_I386
    dd mb2_header_end - mb2_header
    dd -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    ; Module alignment tag (type 6): modules on page boundaries, so they can be
    ; mapped into guests later without copying.
    align 8
    dw 6, 0
    dd 8
    ; End tag.
    align 8
    dw 0, 0
    dd 8
mb2_header_end:

section .boot.text progbits alloc exec nowrite align=16
entry32:
    cli
    cld
    mov edi, eax                      ; magic   -> first C++ argument (zero-extended later)
    mov esi, ebx                      ; info    -> second C++ argument

    ; Zero the bss ourselves: multiboot2's ELF path zeroes it, but a loader that
    ; honours only load_end_addr would leave garbage in our page tables.
    mov ebp, edi
    mov edx, esi
    mov edi, __bss_start
    mov ecx, __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd
    mov edi, ebp
    mov esi, edx

    mov esp, boot_stack_top

    ; Long mode, NX and RDTSC are required; say so on the serial port if missing.
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb .no_long_mode
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29                 ; LM
    jz .no_long_mode
    test edx, 1 << 20                 ; NX
    jz .no_long_mode

    ; First timestamp, for the boot-time figures in the summary.
    rdtsc
    mov [boot_tsc], eax
    mov [boot_tsc + 4], edx

    ; Boot page tables: PML4[0] -> PDPT, PDPT[0..3] -> 4 page directories of
    ; 2 MiB pages identity-mapping 0..4 GiB (loader data and ACPI can sit anywhere
    ; below 4 GiB). Temporary: RWX everywhere until the C++ side replaces them.
    mov eax, boot_pdpt
    or eax, PTE_P | PTE_RW
    mov [boot_pml4], eax
    ; The same 4 GiB also at the direct-map base (PML4 slot 256 =
    ; 0xffff800000000000, kernel/mm/kernel_memory.hpp), so pointers the C++ side
    ; takes before its own tables exist stay valid after the switch.
    mov [boot_pml4 + 256 * 8], eax

    mov ecx, 0                        ; PDPT index 0..3
.fill_pdpt:
    mov eax, ecx
    shl eax, 12
    add eax, boot_pd
    or eax, PTE_P | PTE_RW
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb .fill_pdpt

    mov ecx, 0                        ; PD entry 0..2047 across the 4 directories
.fill_pd:
    mov eax, ecx
    shl eax, 21                       ; low 32 bits of 2 MiB * index
    or eax, PTE_P | PTE_RW | PTE_PS
    mov edx, ecx
    shr edx, 11                       ; high bits of the physical address (index >> 11)
    mov [boot_pd + ecx * 8], eax
    mov [boot_pd + ecx * 8 + 4], edx
    inc ecx
    cmp ecx, 2048
    jb .fill_pd

    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax

    mov eax, boot_pml4
    mov cr3, eax

    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME | EFER_NXE
    wrmsr

    mov eax, cr0
    or eax, CR0_PG | CR0_PE | CR0_WP
    mov cr0, eax

    lgdt [boot_gdt64_ptr]
    jmp 0x08:entry64

.no_long_mode:
    mov esi, msg_no_long_mode
.print:
    lodsb
    test al, al
    jz .halt
    mov dx, COM1
    out dx, al
    jmp .print
.halt:
    hlt
    jmp .halt

bits 64
entry64:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, boot_stack_top
    xor ebp, ebp                      ; terminates backtraces
    mov edi, edi                      ; zero-extend magic
    mov esi, esi                      ; zero-extend info pointer
    call kernel_main_bsp
.hang:
    cli
    hlt
    jmp .hang

section .rodata
msg_no_long_mode:
    db "hv.fatal msg=", '"', "CPU lacks long mode or NX; cannot boot", '"', 13, 10, 0

align 16
; Boot GDT: null, 64-bit code (0x08), data (0x10). Replaced per CPU later.
; Accessed bits preset: the GDT is in .rodata (see ap_trampoline.asm).
boot_gdt64:
    dq 0
    dq 0x00AF9B000000FFFF             ; code: P, DPL0, S, exec/read, accessed, L=1, G
    dq 0x00CF93000000FFFF             ; data: P, DPL0, S, read/write, accessed, D/B, G
boot_gdt64_end:
boot_gdt64_ptr:
    dw boot_gdt64_end - boot_gdt64 - 1
    dq boot_gdt64

section .bss
align 4096
boot_pml4:  resb 4096
boot_pdpt:  resb 4096
boot_pd:    resb 4096 * 4
boot_stack: resb 16384
boot_stack_top:
boot_tsc:   resq 1
