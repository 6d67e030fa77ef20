#!/usr/bin/env escript
%% Item 6: simple_one_for_one: terminate_child with a pid that is already gone answers ok,
%% with a pid that never was a child answers {error, not_found}.
-module(simple_one_for_one).
-mode(compile).
-behaviour(supervisor).
-export([main/1, init/1, child/0]).

main(_) ->
    {ok, Sup} = supervisor:start_link(?MODULE, []),
    {ok, C} = supervisor:start_child(Sup, []),
    io:format("terminate_child: ~p~n", [supervisor:terminate_child(Sup, C)]),
    io:format("terminate_child again: ~p~n", [supervisor:terminate_child(Sup, C)]),
    Other = spawn(fun() -> ok end),
    io:format("terminate_child stranger: ~p~n", [supervisor:terminate_child(Sup, Other)]),
    io:format("terminate_child by id: ~p~n", [supervisor:terminate_child(Sup, w)]).

init([]) ->
    {ok, {#{strategy => simple_one_for_one},
          [#{id => w, start => {?MODULE, child, []}, restart => temporary}]}}.
child() -> {ok, spawn_link(fun() -> receive _ -> ok end end)}.
