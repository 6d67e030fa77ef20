#!/usr/bin/env escript
%% Item 2: exit(boom) in init: {error, boom}; monitors and links see boom; and a supervisor's
%% start fails with {shutdown, {failed_to_start_child, Id, boom}}.
-module(init_exit).
-mode(compile).
-export([main/1, init/1, handle_call/3, handle_cast/2]).

main(_) ->
    io:format("start: ~p~n", [gen_server:start(?MODULE, [], [])]),
    process_flag(trap_exit, true),
    io:format("start_link: ~p~n", [gen_server:start_link(?MODULE, [], [])]),
    receive {'EXIT', _, R} -> io:format("trapped exit: ~p~n", [R]) after 100 -> io:format("no EXIT~n") end,
    Child = #{id => c, start => {gen_server, start_link, [?MODULE, [], []]}},
    io:format("supervisor: ~p~n",
              [supervisor:start_link(?MODULE, {sup, Child})]).

init({sup, Child}) -> {ok, {#{strategy => one_for_one}, [Child]}};
init(_) -> exit(boom).
handle_call(_, _, S) -> {reply, ok, S}.
handle_cast(_, S) -> {noreply, S}.
